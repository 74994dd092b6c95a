"""genlab.train: one small trainer for every model in the course.

- :mod:`genlab.train.trainer`    ``TrainConfig``, ``fit`` → ``TrainResult``
- :mod:`genlab.train.lr`         warm-up + cosine learning rate
- :mod:`genlab.train.ema`        exponential moving average of weights
- :mod:`genlab.train.checkpoint` safetensors + JSON checkpoints, atomic, no pickle
"""

from genlab.train.checkpoint import load_model, save_checkpoint
from genlab.train.ema import EMA
from genlab.train.lr import warmup_cosine_lr
from genlab.train.trainer import TrainConfig, TrainingDivergedError, TrainResult, fit

__all__ = ["EMA", "TrainConfig", "TrainResult", "TrainingDivergedError", "fit", "load_model", "save_checkpoint", "warmup_cosine_lr"]
