import math

import pytest
import torch
from torch import nn

from genlab.errors import CheckpointError, ConfigError
from genlab.train import EMA, TrainConfig, TrainingDivergedError, fit, warmup_cosine_lr


class Noisy(nn.Module):
    """A tiny regressor with dropout, so the global RNG matters too."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 16), nn.Dropout(0.1), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, x):
        return self.net(x)


def regression_data(n=256):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3
    return x, y


def noisy_mse(model, batch, generator):
    """MSE with input noise drawn from the trainer's generator (like a diffusion loss)."""
    x, y = batch
    x = x + 0.01 * torch.randn(x.shape, generator=generator)
    return ((model(x) - y) ** 2).mean()


def make_model(seed=0):
    torch.manual_seed(seed)
    return Noisy()


def test_loss_falls():
    result = fit(make_model(), noisy_mse, regression_data(), TrainConfig(steps=200, batch_size=32, lr=1e-2, warmup_steps=10), progress=False)
    assert len(result.losses) == 200
    first, last = sum(result.losses[:10]) / 10, sum(result.losses[-10:]) / 10
    assert last < 0.1 * first


def test_resume_equals_uninterrupted(tmp_path):
    cfg = dict(steps=30, batch_size=48, lr=5e-3, warmup_steps=5, ema_decay=0.9, seed=3, ckpt_every=13)
    full = fit(make_model(), noisy_mse, regression_data(), TrainConfig(**cfg), progress=False)

    calls = []

    def crashing(model, batch, generator):
        calls.append(1)
        if len(calls) == 20:  # a crash after the step-13 checkpoint
            raise KeyboardInterrupt
        return noisy_mse(model, batch, generator)

    with pytest.raises(KeyboardInterrupt):
        fit(make_model(), crashing, regression_data(), TrainConfig(**cfg), out_dir=tmp_path, progress=False)
    # A fresh process would build a freshly initialised model: resume must overwrite everything.
    resumed = fit(make_model(seed=99), noisy_mse, regression_data(), TrainConfig(**cfg), out_dir=tmp_path, resume=True, progress=False)

    assert resumed.step == 30 and len(resumed.losses) == 30
    assert resumed.losses == full.losses
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(full.ema.state_dict().values(), resumed.ema.state_dict().values()):
        assert torch.equal(a, b)


def test_resume_with_other_options_is_refused(tmp_path):
    fit(make_model(), noisy_mse, regression_data(), TrainConfig(steps=5, batch_size=16), out_dir=tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="batch_size=16"):
        fit(make_model(), noisy_mse, regression_data(), TrainConfig(steps=10, batch_size=32), out_dir=tmp_path, resume=True, progress=False)


def test_nan_loss_stops_and_keeps_last_checkpoint(tmp_path):
    def exploding(model, batch, generator):
        loss = noisy_mse(model, batch, generator)
        return loss * float("nan") if exploding.calls >= 7 else loss

    def counting(model, batch, generator):
        exploding.calls += 1
        return exploding(model, batch, generator)

    exploding.calls = 0
    with pytest.raises(TrainingDivergedError, match="step 6.*last good checkpoint"):
        fit(make_model(), counting, regression_data(), TrainConfig(steps=20, ckpt_every=4), out_dir=tmp_path, progress=False)
    import json

    state = json.loads((tmp_path / "checkpoint" / "state.json").read_text())
    assert state["step"] == 4


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    fit(make_model(), noisy_mse, regression_data(), TrainConfig(steps=3), out_dir=tmp_path, progress=False)
    (tmp_path / "checkpoint" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="corrupt"):
        fit(make_model(), noisy_mse, regression_data(), TrainConfig(steps=6), out_dir=tmp_path, resume=True, progress=False)


def test_bad_config():
    with pytest.raises(ConfigError):
        TrainConfig(steps=0)
    with pytest.raises(ConfigError, match="out_dir"):
        fit(make_model(), noisy_mse, regression_data(), TrainConfig(steps=2), resume=True, progress=False)


def test_warmup_cosine_lr():
    kw = dict(lr=1.0, total_steps=110, warmup_steps=10, min_ratio=0.1)
    assert [warmup_cosine_lr(s, **kw) for s in range(3)] == pytest.approx([0.1, 0.2, 0.3])
    assert warmup_cosine_lr(10, **kw) == pytest.approx(1.0)
    assert warmup_cosine_lr(60, **kw) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi / 2)))
    assert warmup_cosine_lr(110, **kw) == pytest.approx(0.1)


def test_ema_closed_form():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, decay=0.5)
    expected = 0.0
    for n in range(1, 6):
        with torch.no_grad():
            model.weight.fill_(float(n))
        ema.update(model)
        d = min(0.5, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * n
        assert ema.shadow.weight.item() == pytest.approx(expected)
