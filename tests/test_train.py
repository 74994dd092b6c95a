import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genlab.errors import CheckpointError, ConfigError, GenlabError
from genlab.train.checkpoint import load_tensors
from genlab.train import (
    EMA, RunExistsError, TrainConfig, TrainingDivergedError, TrainState, fit, load_model, resolve_checkpoint, train,
    warmup_cosine_lr,
)  # fmt: skip


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


def crash_at(call: int, loss_fn):
    """``loss_fn`` that raises KeyboardInterrupt on its call number ``call`` (1-based), like Ctrl-C."""
    calls = []

    def crashing(*args):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return loss_fn(*args)

    return crashing


def assert_same_weights(a: nn.Module, b: nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def assert_same_optimizer(a: torch.optim.Optimizer, b: torch.optim.Optimizer):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    assert sa["state"].keys() == sb["state"].keys()
    for idx in sa["state"]:
        for k, v in sa["state"][idx].items():
            assert torch.equal(v, sb["state"][idx][k]), (idx, k)


def test_loss_falls():
    result = fit(make_model(), noisy_mse, regression_data(), TrainConfig(steps=200, batch_size=32, lr=1e-2, warmup_steps=10), progress=False)
    assert len(result.losses) == 200
    first, last = sum(result.losses[:10]) / 10, sum(result.losses[-10:]) / 10
    assert last < 0.1 * first


def test_resume_equals_uninterrupted(tmp_path):
    cfg = dict(steps=30, batch_size=48, lr=5e-3, warmup_steps=5, ema_decay=0.9, seed=3, ckpt_every=13)
    full = fit(make_model(), noisy_mse, regression_data(), TrainConfig(**cfg), progress=False)
    with pytest.raises(KeyboardInterrupt):  # a crash after the step-13 checkpoint
        fit(make_model(), crash_at(20, noisy_mse), regression_data(), TrainConfig(**cfg), out_dir=tmp_path, progress=False)
    assert json.loads((resolve_checkpoint(tmp_path) / "state.json").read_text())["step"] == 13
    # A fresh process would build a freshly initialised model: resume must overwrite everything.
    resumed = fit(make_model(seed=99), noisy_mse, regression_data(), TrainConfig(**cfg), out_dir=tmp_path, resume=True, progress=False)

    assert resumed.step == 30 and len(resumed.losses) == 30
    assert resumed.losses == full.losses
    assert_same_weights(full.model, resumed.model)
    assert_same_weights(full.ema, resumed.ema)
    # What was saved at the end is what the uninterrupted run ends with (Noisy is not a registered
    # class, so read the file rather than load_model).
    for k, v in load_tensors(resolve_checkpoint(tmp_path) / "ema.safetensors").items():
        assert torch.equal(v, full.ema.state_dict()[k])


# --------------------------------------------------------------------------- several models


class Gen(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))

    def forward(self, z):
        return self.net(z)


class Disc(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(1, 16), nn.Dropout(0.1), nn.LeakyReLU(0.2), nn.Linear(16, 1))

    def forward(self, x):
        return self.net(x)


N_CRITIC = 2


def gan_state(seed=0):
    torch.manual_seed(seed)
    G, D = Gen(), Disc()
    return TrainState(
        models={"gen": G, "disc": D},
        optimizers={"gen": torch.optim.Adam(G.parameters(), lr=2e-3, betas=(0.5, 0.9)),
                    "disc": torch.optim.Adam(D.parameters(), lr=4e-3, betas=(0.5, 0.9))},
        emas={"gen": EMA(G, 0.9)},
    )  # fmt: skip


def gan_step(ctx, batch):
    """A 1-D non-saturating GAN: N_CRITIC critic updates (one per chunk of the batch), one generator update."""
    G, D, g = ctx.models["gen"], ctx.models["disc"], ctx.generator
    for real in batch[0].chunk(N_CRITIC):
        fake = G(torch.randn(len(real), 2, generator=g)).detach()
        d_loss = ctx.optimize("disc", F.softplus(D(fake)).mean() + F.softplus(-D(real)).mean())
    g_loss = ctx.optimize("gen", F.softplus(-D(G(torch.randn(len(real), 2, generator=g)))).mean())
    return {"d_loss": d_loss, "g_loss": g_loss}


def gan_data():
    return (2.0 + 0.5 * torch.randn(512, 1, generator=torch.Generator().manual_seed(0)),)


GAN_CONFIG = dict(steps=24, batch_size=64, warmup_steps=4, seed=5, ckpt_every=5)


def test_two_models_both_train_and_resume_exactly(tmp_path):
    before = gan_state()
    init = {n: {k: v.clone() for k, v in m.state_dict().items()} for n, m in before.models.items()}
    full = train(gan_state(), gan_step, gan_data(), TrainConfig(**GAN_CONFIG), progress=False)
    assert full.step == 24 and len(full.history["d_loss"]) == len(full.history["g_loss"]) == 24
    for name in ("gen", "disc"):  # both models moved
        assert any(not torch.equal(v, init[name][k]) for k, v in full.models[name].state_dict().items()), name
    # n_critic: the critic's optimiser stepped twice per step
    assert int(next(iter(full.optimizers["disc"].state.values()))["step"]) == 2 * 24
    assert int(next(iter(full.optimizers["gen"].state.values()))["step"]) == 24
    assert full.emas["gen"].num_updates == 24

    def crashing(ctx, batch):
        if ctx.step == 17:  # after the step-15 checkpoint
            raise KeyboardInterrupt
        return gan_step(ctx, batch)

    with pytest.raises(KeyboardInterrupt):
        train(gan_state(), crashing, gan_data(), TrainConfig(**GAN_CONFIG), out_dir=tmp_path, progress=False)
    resumed = train(gan_state(seed=42), gan_step, gan_data(), TrainConfig(**GAN_CONFIG), out_dir=tmp_path, resume=True, progress=False)

    assert resumed.history == full.history
    for name in ("gen", "disc"):
        assert_same_weights(full.models[name], resumed.models[name])
        assert_same_optimizer(full.optimizers[name], resumed.optimizers[name])
    assert_same_weights(full.emas["gen"].shadow, resumed.emas["gen"].shadow)
    assert resumed.emas["gen"].num_updates == full.emas["gen"].num_updates
    assert torch.equal(resumed.generator.get_state(), full.generator.get_state())
    assert torch.equal(resumed.global_rng["cpu"], full.global_rng["cpu"])


def test_other_optimiser_settings_are_refused_on_resume(tmp_path):
    train(gan_state(), gan_step, gan_data(), TrainConfig(**GAN_CONFIG), out_dir=tmp_path, progress=False)
    state = gan_state()
    state.optimizers["disc"].param_groups[0]["lr"] = 1e-4  # a different learning rate for the critic
    with pytest.raises(CheckpointError, match=r"optimiser 'disc' group 0 initial_lr=0.004 \(now 0.0001\)"):
        train(state, gan_step, gan_data(), TrainConfig(**{**GAN_CONFIG, "steps": 30}), out_dir=tmp_path, resume=True, progress=False)


def test_frozen_teacher_distillation(tmp_path):
    torch.manual_seed(0)
    teacher, student = Noisy().eval().requires_grad_(False), Noisy()
    frozen = {k: v.clone() for k, v in teacher.state_dict().items()}
    state = TrainState(models={"model": student, "teacher": teacher}, optimizers={"model": torch.optim.AdamW(student.parameters(), lr=1e-2)})

    def distill_step(ctx, batch):
        (x, _) = batch
        assert not ctx.models["teacher"].training and ctx.models["model"].training
        with torch.no_grad():
            target = ctx.models["teacher"](x)
        return {"loss": ctx.optimize("model", ((ctx.models["model"](x) - target) ** 2).mean())}

    train(state, distill_step, regression_data(), TrainConfig(steps=60, batch_size=32, warmup_steps=5), out_dir=tmp_path, progress=False)
    assert state.history["loss"][-1] < 0.2 * state.history["loss"][0]
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, frozen[k])
    assert (resolve_checkpoint(tmp_path) / "teacher.safetensors").is_file()


# --------------------------------------------------------------------------- randomness


def test_global_rng_is_left_as_found():
    model, data = make_model(), regression_data()
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = fit(model, noisy_mse, data, TrainConfig(steps=15, batch_size=32), progress=False)
    assert torch.equal(torch.get_rng_state(), before)
    # ... and the dropout inside does not depend on the caller's global state.
    model = make_model()
    torch.manual_seed(7)
    torch.rand(5)
    second = fit(model, noisy_mse, data, TrainConfig(steps=15, batch_size=32), progress=False)
    assert first.losses == second.losses
    assert_same_weights(first.model, second.model)


def test_global_rng_is_left_as_found_on_error(tmp_path):
    model = make_model()
    before = torch.get_rng_state()
    with pytest.raises(KeyboardInterrupt):
        fit(model, crash_at(4, noisy_mse), regression_data(), TrainConfig(steps=15, batch_size=32), progress=False)
    assert torch.equal(torch.get_rng_state(), before)


def test_sampling_does_not_change_the_training():
    cfg = dict(steps=20, batch_size=32, ema_decay=0.9)
    plain = fit(make_model(), noisy_mse, regression_data(), TrainConfig(**cfg), progress=False)
    seen = []

    def sample_fn(model, step):
        assert not model.training and not torch.is_grad_enabled()
        seen.append(step)
        torch.rand(100)  # draws from the global RNG must not shift the dropout of later steps

    sampled = fit(make_model(), noisy_mse, regression_data(), TrainConfig(**cfg, sample_every=5), sample_fn=sample_fn, progress=False)
    assert seen == [5, 10, 15, 20]
    assert sampled.losses == plain.losses
    assert_same_weights(sampled.model, plain.model)
    assert sampled.model.training


# --------------------------------------------------------------------------- refusing what would lose a run


def test_resume_with_other_options_is_refused(tmp_path):
    fit(make_model(), noisy_mse, regression_data(), TrainConfig(steps=5, batch_size=16), out_dir=tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="batch_size=16"):
        fit(make_model(), noisy_mse, regression_data(), TrainConfig(steps=10, batch_size=32), out_dir=tmp_path, resume=True, progress=False)


def test_resume_with_another_identity_is_refused(tmp_path):
    identity = {"process": {"kind": "vp", "T": 1000}, "data": "digits"}
    fit(make_model(), noisy_mse, regression_data(), TrainConfig(steps=3), out_dir=tmp_path, identity=identity, progress=False)
    other = {"process": {"kind": "vp", "T": 500}, "data": "digits"}
    with pytest.raises(CheckpointError, match=r"another run \(process\.T: 1000 in the checkpoint, 500 now\)") as err:
        fit(make_model(), noisy_mse, regression_data(), TrainConfig(steps=6), out_dir=tmp_path, resume=True, identity=other, progress=False)
    assert "\n" not in str(err.value)
    with pytest.raises(CheckpointError, match="data: 'digits' in the checkpoint, '\\(unset\\)' now"):
        fit(make_model(), noisy_mse, regression_data(), TrainConfig(steps=6), out_dir=tmp_path, resume=True, identity={"process": identity["process"]}, progress=False)
    # a setting added to the identity later, at its default None, is the same run as one without it
    result = fit(make_model(), noisy_mse, regression_data(), TrainConfig(steps=6), out_dir=tmp_path, resume=True,
                 identity={**identity, "latent": None}, progress=False)  # fmt: skip
    assert result.step == 6 and len(result.losses) == 6


def test_other_model_is_refused_on_resume(tmp_path):
    fit(make_model(), noisy_mse, regression_data(), TrainConfig(steps=3), out_dir=tmp_path, progress=False)
    model = nn.Sequential(nn.Linear(3, 1))
    with pytest.raises(CheckpointError, match="different 'model'"):
        fit(model, noisy_mse, regression_data(), TrainConfig(steps=6), out_dir=tmp_path, resume=True, progress=False)


def test_existing_run_needs_resume_or_overwrite(tmp_path):
    fit(make_model(), noisy_mse, regression_data(), TrainConfig(steps=4), out_dir=tmp_path, progress=False)
    (tmp_path / "samples.png").write_bytes(b"png")  # not ours: overwrite leaves it
    with pytest.raises(RunExistsError, match="already holds a training run.*--resume.*--overwrite"):
        fit(make_model(), noisy_mse, regression_data(), TrainConfig(steps=4), out_dir=tmp_path, progress=False)
    assert issubclass(RunExistsError, GenlabError)
    result = fit(make_model(), noisy_mse, regression_data(), TrainConfig(steps=2), out_dir=tmp_path, overwrite=True, progress=False)
    assert result.step == 2
    state = json.loads((resolve_checkpoint(tmp_path) / "state.json").read_text())
    assert state["step"] == 2 and len(state["history"]["loss"]) == 2
    assert [p.name for p in (tmp_path / "checkpoints").iterdir() if p.is_dir()] == ["000002"]
    assert (tmp_path / "samples.png").is_file()
    with pytest.raises(ConfigError, match="choose one"):
        fit(make_model(), noisy_mse, regression_data(), TrainConfig(steps=2), out_dir=tmp_path, overwrite=True, resume=True, progress=False)


def test_nothing_to_resume(tmp_path):
    with pytest.raises(CheckpointError, match=f"nothing to resume in {tmp_path}: .*train without --resume"):
        fit(make_model(), noisy_mse, regression_data(), TrainConfig(steps=2), out_dir=tmp_path, resume=True, progress=False)


# --------------------------------------------------------------------------- divergence


def test_nan_loss_stops_and_keeps_last_checkpoint(tmp_path):
    calls = []

    def exploding(model, batch, generator):
        calls.append(1)
        loss = noisy_mse(model, batch, generator)
        return loss * float("nan") if len(calls) >= 7 else loss

    with pytest.raises(TrainingDivergedError, match=r"'model' loss became nan at step 6; the last good checkpoint is .*000004") as err:
        fit(make_model(), exploding, regression_data(), TrainConfig(steps=20, ckpt_every=4), out_dir=tmp_path, progress=False)
    assert "\n" not in str(err.value)
    good = resolve_checkpoint(tmp_path)
    assert good.name == "000004" and str(good) in str(err.value)
    assert json.loads((good / "state.json").read_text())["step"] == 4
    # ... and it resumes (the divergence was in the loss, not in the checkpoint)
    result = fit(make_model(), noisy_mse, regression_data(), TrainConfig(steps=8, ckpt_every=4), out_dir=tmp_path, resume=True, progress=False)
    assert result.step == 8


def test_nan_gradient_stops_and_keeps_last_checkpoint(tmp_path):
    calls = []

    def bad_grad(model, batch, generator):
        calls.append(1)
        loss = noisy_mse(model, batch, generator)
        if len(calls) >= 6:  # √u at u = 0: the value is 0, its gradient is infinite
            loss = loss + torch.sqrt((model(batch[0]) * 0).sum())
        return loss

    with pytest.raises(TrainingDivergedError, match=r"gradient norm of 'model' became nan .*at step 5; the last good checkpoint is .*000003"):
        fit(make_model(), bad_grad, regression_data(), TrainConfig(steps=20, ckpt_every=3), out_dir=tmp_path, progress=False)
    good = resolve_checkpoint(tmp_path)
    assert good.name == "000003"
    assert all(torch.isfinite(t).all() for t in load_tensors(good / "model.safetensors").values())


def test_non_finite_weights_are_never_checkpointed(tmp_path):
    torch.manual_seed(0)
    model = Noisy()
    state = TrainState(models={"model": model}, optimizers={"model": torch.optim.SGD(model.parameters(), lr=0.01)})

    def step_fn(ctx, batch):
        loss = ctx.optimize("model", noisy_mse(ctx.models["model"], batch, ctx.generator))
        if ctx.step == 7:  # right before the step-8 checkpoint: loss and gradients finite, weights not
            with torch.no_grad():
                ctx.models["model"].net[0].weight[0, 0] = float("inf")
        return {"loss": loss}

    with pytest.raises(TrainingDivergedError, match=r"net\.0\.weight in model\.safetensors became non-finite .*last good checkpoint is .*000004"):
        train(state, step_fn, regression_data(), TrainConfig(steps=20, ckpt_every=4), out_dir=tmp_path, progress=False)
    good = resolve_checkpoint(tmp_path)
    assert good.name == "000004"
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["000004", "LATEST"]


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    fit(make_model(), noisy_mse, regression_data(), TrainConfig(steps=3), out_dir=tmp_path, progress=False)
    (resolve_checkpoint(tmp_path) / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="corrupt"):
        fit(make_model(), noisy_mse, regression_data(), TrainConfig(steps=6), out_dir=tmp_path, resume=True, progress=False)


def test_bad_config():
    with pytest.raises(ConfigError):
        TrainConfig(steps=0)
    with pytest.raises(ConfigError, match="out_dir"):
        fit(make_model(), noisy_mse, regression_data(), TrainConfig(steps=2), resume=True, progress=False)
    with pytest.raises(ConfigError, match="JSON-able"):
        fit(make_model(), noisy_mse, regression_data(), TrainConfig(steps=2), identity={"x": object()}, progress=False)
    with pytest.raises(ConfigError, match="name no model"):
        TrainState(models={"a": nn.Linear(1, 1)}, optimizers={"b": torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=1)})


# --------------------------------------------------------------------------- pieces


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
    assert ema.num_updates == 5 and not ema.shadow.training


def test_ema_weights_load_into_a_fresh_model(tmp_path):
    from genlab.nn.classifier import MLPClassifier, cross_entropy_loss
    from genlab.nn.mlp import MLPConfig

    torch.manual_seed(0)
    model = MLPClassifier(MLPConfig(in_features=3, hidden=(8,), num_classes=2, dropout=0.1))
    x, y = regression_data()
    result = fit(model, cross_entropy_loss, (x, (y[:, 0] > 0).long()), TrainConfig(steps=10, batch_size=32, ema_decay=0.9), out_dir=tmp_path, progress=False)
    ema, cfg = load_model(tmp_path)  # use_ema=True by default
    raw, _ = load_model(tmp_path, use_ema=False)
    assert cfg["has_ema"] and cfg["step"] == 10
    assert_same_weights(ema, result.ema)
    assert_same_weights(raw, result.model)
    assert not all(torch.equal(a, b) for a, b in zip(ema.state_dict().values(), raw.state_dict().values()))


def test_rng_states_of_another_machine_are_skipped():
    """A checkpoint from a GPU run resumes on a CPU-only machine: its CUDA states are not restorable there."""
    from genlab.train.engine import _get_global_rng, _set_global_rng

    saved = _get_global_rng(torch.device("cpu"))
    assert set(saved) == {"cpu"}  # a CPU run never touches (or initialises) CUDA
    torch.rand(3)
    _set_global_rng({**saved, "cuda.0": saved["cpu"].clone()} if not torch.cuda.is_available() else saved)
    assert torch.equal(torch.get_rng_state(), saved["cpu"])


@pytest.mark.parametrize(
    "bad",
    [dict(steps=0), dict(steps=2.5), dict(batch_size=-1), dict(lr=float("nan")), dict(lr=0.0), dict(lr=float("inf")),
     dict(weight_decay=-0.1), dict(warmup_steps=-1), dict(lr_min_ratio=1.5), dict(grad_clip=0.0), dict(grad_clip=float("nan")),
     dict(ema_decay=1.0), dict(ema_decay=0.0), dict(seed=-1), dict(ckpt_every=-5), dict(log_every=0)],
)
def test_train_config_rejects_bad_values(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        TrainConfig(**bad)


def test_a_config_field_added_later_keeps_old_runs_resumable(tmp_path):
    # A run written before UNetConfig had `context_dim`: its config.json lacks the field.
    import json

    from genlab.nn import UNet, UNetConfig

    def unet():
        torch.manual_seed(0)
        return UNet(UNetConfig(image_size=8, base_channels=8, channel_mults=(1, 2), attention_resolutions=(4,), num_res_blocks=1))

    loss = lambda m, batch, g: m(batch[0], torch.zeros(len(batch[0]), dtype=torch.long)).square().mean()  # noqa: E731
    data = (torch.randn(16, 1, 8, 8),)
    fit(unet(), loss, data, TrainConfig(steps=2, batch_size=8), out_dir=tmp_path, progress=False)
    from genlab.train.checkpoint import resolve_checkpoint

    config_file = resolve_checkpoint(tmp_path) / "config.json"
    cfg = json.loads(config_file.read_text())
    del cfg["models"]["model"]["config"]["context_dim"]
    config_file.write_text(json.dumps(cfg))
    assert fit(unet(), loss, data, TrainConfig(steps=3, batch_size=8), out_dir=tmp_path, resume=True, progress=False).step == 3
