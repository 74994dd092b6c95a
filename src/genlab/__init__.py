"""genlab: generative models you can read and run on a laptop CPU.

Subpackages, one idea per module:

- ``genlab.data``       data sets (digits, MNIST-family IDX, toy 2-D, tabular)
- ``genlab.stats``      normal / multivariate normal / GMM / EM / KL / sampling (NumPy, SciPy)
- ``genlab.nn``         networks: time-conditioned U-Net, VAE, classifiers
- ``genlab.diffusion``  schedules, forward process, parameterisations, losses, samplers
- ``genlab.train``      a small trainer (EMA, clipping, LR schedule, checkpoints, resume)
- ``genlab.viz``        image grids, animations, Japanese fonts in matplotlib
"""

__version__ = "0.1.0"
