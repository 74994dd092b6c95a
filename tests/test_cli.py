import json
import subprocess
import sys

import pytest

from genlab.cli import main

TINY = ["--steps", "3", "--batch-size", "16", "--ckpt-every", "2"]


def error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "Traceback" not in "\n".join(err)
    return err[-1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A conditional digits model trained for a few steps (quality is not the point here)."""
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--dataset", "digits", "--conditional", "--out", str(out), *TINY]) == 0
    return out


def test_train_writes_checkpoint_samples_and_loss(trained):
    for name in ("checkpoint/model.safetensors", "checkpoint/ema.safetensors", "checkpoint/config.json", "samples.png", "loss.png"):
        assert (trained / name).is_file(), name
    cfg = json.loads((trained / "checkpoint" / "config.json").read_text())
    assert cfg["metadata"]["diffusion"]["num_classes"] == 10 and cfg["step"] == 3


@pytest.mark.parametrize("extra", [["--sampler", "ddim", "--class", "3", "--guidance", "2"], ["--sampler", "ddpm", "--steps", "5"], []])
def test_sample_from_checkpoint(trained, tmp_path, extra):
    out = tmp_path / "s.png"
    assert main(["sample", "--ckpt", str(trained), "--n", "4", "--steps", "3", *extra, "--out", str(out)]) == 0
    from PIL import Image

    assert Image.open(out).size[0] > 8


def test_resume_continues(tmp_path):
    base = ["train", "--dataset", "digits", "--out", str(tmp_path), "--batch-size", "8", "--ckpt-every", "2"]
    assert main([*base, "--steps", "2"]) == 0
    assert main([*base, "--steps", "4", "--resume"]) == 0
    state = json.loads((tmp_path / "checkpoint" / "state.json").read_text())
    assert state["step"] == 4 and len(state["losses"]) == 4


def test_toy2d(tmp_path):
    assert main(["train", "--dataset", "toy2d", "--toy", "rings", "--out", str(tmp_path), *TINY]) == 0
    assert main(["sample", "--ckpt", str(tmp_path), "--n", "50", "--steps", "2", "--out", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").is_file()


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["sample", "--ckpt", "{missing}"], "no checkpoint at"),
        (["sample", "--ckpt", "{uncond}", "--guidance", "3"], "guidance needs a class-conditional model"),
        (["sample", "--ckpt", "{uncond}", "--class", "1"], "unconditional"),
        (["sample", "--ckpt", "{cond}", "--class", "12"], "out of range"),
        (["sample", "--ckpt", "{cond}", "--steps", "5000"], "sampling steps must be in 1..1000"),
        (["sample", "--ckpt", "{corrupt}"], "corrupt"),
        (["train", "--dataset", "digits", "--channel-mults", "1,2,2,2,2", "--steps", "1", "--out", "{tmp}/x"], "multiple of 16"),
        (["train", "--dataset", "toy2d", "--conditional", "--out", "{tmp}/y"], "no labels"),
        (["train", "--dataset", "digits", "--schedule", "wavy", "--out", "{tmp}/z"], "unknown schedule"),
        (["train", "--dataset", "digits", "--batch-size", "8", "--steps", "2", "--out", "{uncond}", "--resume", "--lr", "0.1"], "cannot resume"),
    ],
)
def test_bad_input_is_one_clear_line(argv, needle, trained, tmp_path, tmp_path_factory, capsys):
    uncond = tmp_path_factory.getbasetemp() / "uncond"
    if not (uncond / "checkpoint").exists():
        assert main(["train", "--dataset", "digits", "--out", str(uncond), "--steps", "2", "--batch-size", "8"]) == 0
    corrupt = tmp_path / "corrupt"
    import shutil

    shutil.copytree(trained, corrupt)
    (corrupt / "checkpoint" / "ema.safetensors").write_bytes(b"\x00" * 20)
    paths = {"missing": tmp_path / "nothing", "uncond": uncond, "cond": trained, "corrupt": corrupt, "tmp": tmp_path}
    capsys.readouterr()
    assert main([a.format(**paths) for a in argv]) == 2
    line = error_line(capsys)
    assert line.startswith("genlab: error:") and needle in line


@pytest.mark.parametrize("argv", [["train", "--dataset", "cifar"], ["sample", "--ckpt", "x", "--steps", "0"], ["sample", "--ckpt", "x", "--n", "-3"]])
def test_argument_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_entry_point_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "genlab.cli", "sample", "--ckpt", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no checkpoint at" in proc.stderr


@pytest.mark.slow
def test_demo_smoke(tmp_path, capsys):
    assert main(["demo", "--smoke", "--out", str(tmp_path)]) == 0
    for name in ("samples.png", "denoising.gif", "loss.png", "metrics.json"):
        assert (tmp_path / name).is_file(), name
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert 0.0 <= metrics["conditional_accuracy"] <= 1.0 and metrics["samples_judged"] == 20
    assert "conditional accuracy" in capsys.readouterr().out
