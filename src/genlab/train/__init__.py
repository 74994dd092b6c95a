"""genlab.train: one small trainer for every model in the course.

- :mod:`genlab.train.trainer`    ``fit(model, loss_fn, data, config)`` → ``TrainResult``: one model, one loss
- :mod:`genlab.train.engine`     ``TrainState`` + ``train(state, step_fn, …)``: several models (GAN,
                                 consistency, distillation), ``TrainConfig``, the guarantees of every run
- :mod:`genlab.train.lr`         warm-up + cosine learning rate
- :mod:`genlab.train.ema`        exponential moving average of weights (on ``AveragedModel``)
- :mod:`genlab.train.checkpoint` safetensors + JSON checkpoints, crash-safe versions, no pickle
"""

from genlab.train.checkpoint import load_model, read_config, resolve_checkpoint, save_checkpoint
from genlab.train.ema import EMA
from genlab.train.engine import RunExistsError, StepContext, TrainConfig, TrainingDivergedError, TrainState, train
from genlab.train.lr import warmup_cosine_lr
from genlab.train.trainer import TrainResult, fit

__all__ = [
    "EMA", "RunExistsError", "StepContext", "TrainConfig", "TrainResult", "TrainState", "TrainingDivergedError",
    "fit", "load_model", "read_config", "resolve_checkpoint", "save_checkpoint", "train", "warmup_cosine_lr",
]  # fmt: skip
