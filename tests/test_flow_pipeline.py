"""Flow matching from the command line: `genlab train --flow`, the flow samplers, `genlab reflow`
(pairs saved once, exact resume, the teacher's weights as the start), and the clear errors."""

from __future__ import annotations

import pytest
import torch

from genlab.cli import main
from genlab.pipeline import generate, load_diffusion
from genlab.train import load_model

TINY = ["--steps", "12", "--batch-size", "32", "--base-channels", "16", "--ckpt-every", "6"]


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("flow") / "run"
    assert main(["train", "--dataset", "digits", "--flow", "ot", "--conditional", "--out", str(out), *TINY]) == 0
    return out


def test_train_flow_records_the_path_and_velocity_prediction(flow_run, tmp_path, capsys):
    model, spec = load_diffusion(flow_run)
    assert spec.process["kind"] == "rectified_flow" and spec.prediction == "velocity" and spec.num_classes == 10
    png = tmp_path / "s.png"
    assert main(["sample", "--ckpt", str(flow_run), "--sampler", "flow-rk4", "--steps", "3", "--n", "10", "--out", str(png)]) == 0
    assert png.is_file()
    # on the straight path, flow-euler is DDIM: the same samples from the same noise
    a = generate(model, spec, 6, sampler="flow-euler", steps=4, labels=3, seed=1)
    b = generate(model, spec, 6, sampler="ddim", steps=4, labels=3, seed=1)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_vp_path_trains_and_samples(tmp_path):
    out = tmp_path / "vp"
    assert main(["train", "--dataset", "digits", "--flow", "vp", "--out", str(out), *TINY]) == 0
    model, spec = load_diffusion(out)
    assert spec.process == {"kind": "continuous_vp", "schedule": "cosine", "beta_min": 0.1, "beta_max": 20.0}
    x = generate(model, spec, 4, sampler="flow-midpoint", steps=3)
    assert x.shape == (4, 1, 8, 8) and bool(torch.isfinite(x).all())
    assert x.abs().max() <= 1  # an ODE solver's last step is not a clipped x̂₀: generate keeps images in range


def _weights(path, ema=False):
    model, _ = load_model(path, use_ema=ema)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_reflow_starts_from_the_teacher_reuses_its_pairs_and_resumes_exactly(flow_run, tmp_path, capsys, monkeypatch):
    common = ["reflow", "--ckpt", str(flow_run), "--pairs", "48", "--pair-steps", "2", "--batch-size", "16", "--ckpt-every", "4"]
    # lr ~ 0: the new model is the teacher (its EMA weights, the ones that drew the pairs) after one step
    assert main([*common, "--steps", "1", "--lr", "1e-12", "--out", str(tmp_path / "still")]) == 0
    teacher, still = _weights(flow_run, ema=True), _weights(tmp_path / "still")
    assert max((teacher[k] - still[k]).abs().max().item() for k in teacher) < 1e-6
    assert (tmp_path / "still" / "reflow_pairs.safetensors").is_file()
    assert (tmp_path / "still" / "samples_1step.png").is_file()

    assert main([*common, "--steps", "8", "--out", str(tmp_path / "a")]) == 0
    from genlab.train import engine

    save = engine._save

    def save_then_stop(state, *args):  # Ctrl-C right after the checkpoint of step 4
        save(state, *args)
        if state.step == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(engine, "_save", save_then_stop)
    assert main([*common, "--steps", "8", "--out", str(tmp_path / "b")]) == 130
    monkeypatch.setattr(engine, "_save", save)
    pairs = tmp_path / "b" / "reflow_pairs.safetensors"
    stamp = pairs.stat().st_mtime_ns
    assert main([*common, "--steps", "8", "--out", str(tmp_path / "b"), "--resume"]) == 0
    assert pairs.stat().st_mtime_ns == stamp  # the pairs were read back, not drawn again
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)
    _, spec = load_diffusion(tmp_path / "a")
    assert spec.process["kind"] == "rectified_flow"


def test_clear_errors(flow_run, tmp_path, capsys):
    plain = tmp_path / "plain"
    assert main(["train", "--dataset", "digits", "--out", str(plain), *TINY]) == 0
    capsys.readouterr()
    cases = [
        (["train", "--dataset", "digits", "--flow", "ot", "--prediction", "v", "--out", str(tmp_path / "x")], "drop --prediction"),
        (["train", "--dataset", "digits", "--patch-size", "2", "--out", str(tmp_path / "x")], "--network dit"),
        (["sample", "--ckpt", str(plain), "--sampler", "flow-rk4", "--out", str(tmp_path / "s.png")], "continuous path"),
        (["reflow", "--ckpt", str(plain), "--out", str(tmp_path / "r")], "not a rectified-flow model"),
        (["reflow", "--ckpt", str(flow_run), "--pairs", "8", "--pair-steps", "1", "--steps", "1", "--out", str(flow_run)], "already"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (argv, err)


def test_a_dit_trains_by_flow_matching_from_the_cli(tmp_path):
    """The Diffusion Transformer replaces the U-Net for any objective: here flow matching, class-conditional."""
    out = tmp_path / "dit"
    argv = ["train", "--dataset", "digits", "--flow", "ot", "--conditional", "--network", "dit", "--hidden-size", "32",
            "--depth", "2", "--steps", "6", "--batch-size", "16", "--ckpt-every", "3", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    model, spec = load_diffusion(out)
    assert type(model).__name__ == "DiT" and model.config.patch_size == 2 and model.config.hidden_size == 32
    x = generate(model, spec, 10, sampler="flow-rk4", steps=2, labels=torch.arange(10))
    assert x.shape == (10, 1, 8, 8) and bool(torch.isfinite(x).all())
    assert main([*argv[:-2], "--out", str(out), "--resume", "--steps", "8"]) == 0  # the identity (network, DiT config) matches
