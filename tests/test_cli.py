import errno
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genlab.cli import main
from genlab.train.checkpoint import resolve_checkpoint

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
    ckpt = resolve_checkpoint(trained)
    for name in ("model.safetensors", "ema.safetensors", "config.json"):
        assert (ckpt / name).is_file(), name
    for name in ("samples.png", "loss.png"):
        assert (trained / name).is_file(), name
    cfg = json.loads((ckpt / "config.json").read_text())
    diffusion = cfg["metadata"]["diffusion"]
    assert diffusion["num_classes"] == 10 and cfg["step"] == 3
    # the checkpoint holds the process itself and the data range, as data
    assert diffusion["process"]["kind"] == "discrete_vp" and len(diffusion["process"]["betas"]) == 1000
    assert diffusion["clip"] == [-1.0, 1.0]


@pytest.mark.parametrize("extra", [["--sampler", "ddim", "--class", "3", "--guidance", "2"], ["--sampler", "ddpm", "--steps", "5"], []])
def test_sample_from_checkpoint(trained, tmp_path, extra):
    out = tmp_path / "s.png"
    assert main(["sample", "--ckpt", str(trained), "--n", "4", "--steps", "3", *extra, "--out", str(out)]) == 0
    from PIL import Image

    assert Image.open(out).size[0] > 8


@pytest.mark.parametrize("sampler,grid,calls", [("euler", None, 3), ("heun", None, 5), ("dpmpp-2m", "log_snr", 3),
                                                ("unipc", "timesteps", 3), ("ode", None, None)])  # fmt: skip
def test_sample_with_fast_samplers(trained, tmp_path, capsys, sampler, grid, calls):
    out = tmp_path / "s.png"
    extra = ["--grid", grid] if grid else []
    assert main(["sample", "--ckpt", str(trained), "--n", "3", "--steps", "3", "--sampler", sampler, *extra, "--out", str(out)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    nfe = int(re.search(r"(\d+) denoiser calls per sample", line).group(1))
    assert nfe == calls if calls else nfe > 3  # heun: 2 per step but the last; ode: its own steps, more than 3
    assert out.is_file()


def test_eta_is_ddim_only(trained, tmp_path, capsys):
    code = main(["sample", "--ckpt", str(trained), "--n", "2", "--sampler", "dpmpp-2m", "--eta", "0.5", "--out", str(tmp_path / "s.png")])
    assert code == 2 and "eta" in error_line(capsys)


def test_resume_continues(tmp_path):
    base = ["train", "--dataset", "digits", "--out", str(tmp_path), "--batch-size", "8", "--ckpt-every", "2"]
    assert main([*base, "--steps", "2"]) == 0
    assert main([*base, "--steps", "4", "--resume"]) == 0
    state = json.loads((resolve_checkpoint(tmp_path) / "state.json").read_text())
    assert state["step"] == 4


def readme_commands(prefix):
    """The `genlab ...` lines of the README that start with ``prefix`` (comments dropped)."""
    text = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    lines = [line.split("#")[0].strip() for line in text.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith(prefix)]


def test_readme_resume_example_works_as_written(tmp_path, monkeypatch):
    # The README trains a run and then resumes it; only the step counts are scaled down here.
    first = next(c for c in readme_commands("genlab train --dataset digits --conditional") if "--resume" not in c)
    resume = next(c for c in readme_commands("genlab train") if "--resume" in c)
    monkeypatch.chdir(tmp_path)

    def small(cmd, steps):
        cmd = list(cmd)
        cmd[cmd.index("--steps") + 1] = str(steps)
        return cmd + ["--batch-size", "8"]

    assert main(small(first, 2)) == 0
    assert main(small(resume, 3)) == 0
    out = Path(resume[resume.index("--out") + 1])
    assert json.loads((resolve_checkpoint(out) / "state.json").read_text())["step"] == 3


def test_existing_run_is_not_overwritten_silently(tmp_path, capsys):
    base = ["train", "--dataset", "digits", "--out", str(tmp_path), "--batch-size", "8", "--steps", "1"]
    assert main(base) == 0
    before = resolve_checkpoint(tmp_path)
    capsys.readouterr()
    assert main(base) == 2
    assert "--overwrite" in error_line(capsys) and resolve_checkpoint(tmp_path) == before
    assert main([*base, "--overwrite"]) == 0


def test_resume_with_another_setup_is_refused(tmp_path, capsys):
    base = ["train", "--dataset", "digits", "--out", str(tmp_path), "--batch-size", "8", "--steps", "1"]
    assert main(base) == 0
    capsys.readouterr()
    assert main([*base, "--steps", "2", "--resume", "--prediction", "v"]) == 2
    assert "prediction" in error_line(capsys)
    assert main([*base, "--steps", "2", "--resume", "--conditional"]) == 2
    assert "num_classes" in error_line(capsys) or "conditional" in error_line(capsys)


def test_resume_with_nothing_to_resume_says_so(tmp_path, capsys):
    assert main(["train", "--dataset", "digits", "--out", str(tmp_path / "empty"), "--steps", "1", "--resume"]) == 2
    assert "nothing to resume" in error_line(capsys)


def test_sample_writes_jpeg(trained, tmp_path):
    out = tmp_path / "s.jpg"
    assert main(["sample", "--ckpt", str(trained), "--n", "4", "--steps", "2", "--out", str(out)]) == 0
    from PIL import Image

    assert Image.open(out).format == "JPEG"


def test_learned_variance_trains_with_the_hybrid_loss_and_samples_with_its_variance(tmp_path):
    from genlab.diffusion import CallCounter, LearnedVarianceDenoiser
    from genlab.pipeline import generate, load_diffusion, make_denoiser

    assert main(["train", "--dataset", "digits", "--learned-variance", "--out", str(tmp_path), *TINY]) == 0
    meta = json.loads((resolve_checkpoint(tmp_path) / "config.json").read_text())
    assert meta["metadata"]["loss"]["loss"] == "hybrid" and meta["metadata"]["diffusion"]["learned_variance"] is True
    model, spec = load_diffusion(tmp_path)
    assert spec.learned_variance and model.conv_out.out_channels == 2
    den = CallCounter(make_denoiser(model, spec))
    assert isinstance(den.denoiser.denoiser, LearnedVarianceDenoiser) and hasattr(den, "x0_and_fraction")
    a = generate(model, spec, 3, sampler="ddpm", steps=4, seed=0)
    assert a.shape == (3, 1, 8, 8) and bool(torch.isfinite(a).all())
    assert main(["sample", "--ckpt", str(tmp_path), "--n", "2", "--steps", "3", "--sampler", "unipc", "--out", str(tmp_path / "u.png")]) == 0


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
        (["sample", "--ckpt", "{cond}", "--steps", "5000"], "sampling steps must be an int in 1..1000"),
        (["sample", "--ckpt", "{cond}", "--out", "{tmp}/x.gif"], ".png, .jpg or .jpeg"),
        (["sample", "--ckpt", "{cond}", "--steps", "2", "--n", "2", "--out", "{tmp}/folder.png"], "is a folder"),
        (["sample", "--ckpt", "{cond}", "--steps", "2", "--n", "2", "--out", "{readonly}/x.png"], "permission denied"),
        (["sample", "--ckpt", "{cond}", "--steps", "2", "--n", "2", "--out", "{afile}/x.png"], "is a file, not a folder"),
        (["train", "--dataset", "digits", "--steps", "1", "--out", "{afile}/run"], "is a file, not a folder"),
        (["sample", "--ckpt", "{corrupt}"], "corrupt"),
        (["train", "--dataset", "digits", "--channel-mults", "1,2,2,2,2", "--steps", "1", "--out", "{tmp}/x"], "multiple of 16"),
        (["train", "--dataset", "toy2d", "--conditional", "--out", "{tmp}/y"], "no labels"),
        (["train", "--dataset", "digits", "--schedule", "wavy", "--out", "{tmp}/z"], "unknown schedule"),
        (["train", "--dataset", "digits", "--conditional", "--learned-variance", "--out", "{tmp}/lv"], "learned variance is implemented for unconditional"),
        (["train", "--dataset", "digits", "--learned-variance", "--min-snr-gamma", "5", "--steps", "1", "--out", "{tmp}/lv2"], "drop --min-snr-gamma"),
        (["train", "--dataset", "digits", "--batch-size", "8", "--steps", "2", "--out", "{uncond}", "--resume", "--lr", "0.1"], "cannot resume"),
    ],
)
def test_bad_input_is_one_clear_line(argv, needle, trained, tmp_path, tmp_path_factory, capsys):
    uncond = tmp_path_factory.getbasetemp() / "uncond"
    if not (uncond / "checkpoints").exists():
        assert main(["train", "--dataset", "digits", "--out", str(uncond), "--steps", "2", "--batch-size", "8"]) == 0
    corrupt = tmp_path / "corrupt"
    import shutil

    shutil.copytree(trained, corrupt)
    for ema in corrupt.glob("checkpoints/*/ema.safetensors"):  # every version, so none is valid
        ema.write_bytes(b"\x00" * ema.stat().st_size)
    afile = tmp_path / "afile"
    afile.write_text("x")
    (tmp_path / "folder.png").mkdir()
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o500)
    paths = {"missing": tmp_path / "nothing", "uncond": uncond, "cond": trained, "corrupt": corrupt, "tmp": tmp_path, "afile": afile, "readonly": readonly}
    if "{readonly}" in " ".join(argv) and _can_write(readonly):
        pytest.skip("running as a user who can write anywhere (root): no permission error to provoke")
    capsys.readouterr()
    assert main([a.format(**paths) for a in argv]) == 2
    line = error_line(capsys)
    assert line.startswith("genlab: error:") and needle in line


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--dataset", "cifar"],
        ["sample", "--ckpt", "x", "--steps", "0"],
        ["sample", "--ckpt", "x", "--n", "-3"],
        ["sample", "--ckpt", "x", "--guidance", "nan"],
        ["sample", "--ckpt", "x", "--guidance", "inf"],
        ["sample", "--ckpt", "x", "--eta", "nan"],
        ["sample", "--ckpt", "x", "--eta", "1.5"],
        ["sample", "--ckpt", "x", "--seed", "-1"],
        ["sample", "--ckpt", "x", "--class", "-2"],
        ["train", "--dataset", "toy2d", "--seed", "-4"],
        ["train", "--dataset", "digits", "--lr", "inf"],
        ["train", "--dataset", "digits", "--sample-every", "-1"],
    ],
)
def test_argument_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_entry_point_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "genlab.cli", "sample", "--ckpt", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no checkpoint at" in proc.stderr


@pytest.mark.parametrize(
    "err, needle",
    [(errno.ENOSPC, "disk is full"), (errno.EACCES, "permission denied"), (errno.EROFS, "permission denied"), (errno.EIO, "Input/output error")],
)
def test_os_errors_are_one_line(err, needle, trained, tmp_path, monkeypatch, capsys):
    import os

    import genlab.pipeline

    def fail(*args, **kwargs):
        raise OSError(err, os.strerror(err), str(tmp_path / "s.png"))

    monkeypatch.setattr(genlab.pipeline, "save_samples", fail)
    capsys.readouterr()
    assert main(["sample", "--ckpt", str(trained), "--n", "2", "--steps", "2", "--out", str(tmp_path / "s.png")]) == 2
    line = error_line(capsys)
    assert line.startswith("genlab: error:") and needle in line and "s.png" in line


def _can_write(folder):
    try:
        (folder / ".probe").write_text("")
    except OSError:
        return False
    (folder / ".probe").unlink()
    return True


@pytest.mark.slow
def test_demo_smoke(tmp_path, capsys):
    assert main(["demo", "--smoke", "--out", str(tmp_path)]) == 0
    for name in ("samples.png", "denoising.gif", "loss.png", "metrics.json"):
        assert (tmp_path / name).is_file(), name
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["samples_judged"] == 20
    # The judge is trained for real even at smoke scale: it must read real digits well.
    assert metrics["classifier_test_accuracy"] > 0.8
    # What the demo printed is what it wrote.
    out = capsys.readouterr().out
    printed = float(re.search(r"conditional accuracy: ([\d.]+)%", out).group(1)) / 100
    assert printed == pytest.approx(metrics["conditional_accuracy"], abs=5e-4)
    # Running the demo again replaces its own model instead of refusing.
    assert main(["demo", "--smoke", "--out", str(tmp_path)]) == 0


def test_train_cifar10_end_to_end_on_stand_in_data(tmp_path, monkeypatch, capsys):
    # The real loader is tested in test_cifar.py; here 3×32×32 data of the right shape goes through
    # `genlab train --dataset cifar10` and `genlab sample` (the U-Net for RGB 32×32, the slow-CPU note).
    import torch

    import genlab.data

    g = torch.Generator().manual_seed(0)
    fake = (torch.rand(40, 3, 32, 32, generator=g) * 2 - 1, torch.randint(0, 10, (40,), generator=g))
    monkeypatch.setattr(genlab.data, "load_image_dataset", lambda name, split="train": fake)
    assert main(["train", "--dataset", "cifar10", "--conditional", "--out", str(tmp_path), "--steps", "1", "--batch-size", "4"]) == 0
    assert "slow to train on a CPU" in capsys.readouterr().out
    assert main(["sample", "--ckpt", str(tmp_path), "--n", "3", "--steps", "2", "--out", str(tmp_path / "c.png")]) == 0
    from PIL import Image

    img = Image.open(tmp_path / "c.png")
    assert img.mode == "RGB"


# ------------------------------------------------------------------------------------------
# genlab eval
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def feature_cache(tmp_path_factory):
    """A private data cache, so the digits feature network is trained once for these tests."""
    import os

    old = os.environ.get("GENLAB_DATA")
    os.environ["GENLAB_DATA"] = str(tmp_path_factory.mktemp("data"))
    yield
    if old is None:
        del os.environ["GENLAB_DATA"]
    else:
        os.environ["GENLAB_DATA"] = old


@pytest.mark.slow
def test_eval_checkpoint_prints_a_table_and_writes_json(trained, tmp_path, feature_cache, capsys):
    out = tmp_path / "e.json"
    assert main(["eval", "--ckpt", str(trained), "--n", "150", "--steps", "2", "--guidance", "2", "--sampler", "heun", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["n"] == 150 and report["dataset"] == "digits"
    assert report["sampler"] == "heun" and report["nfe"] == 3 and report["grid"] == "karras"  # the default, named
    assert set(report["metrics"]) >= {"FID", "KID", "IS", "precision", "recall", "conditional accuracy"}
    printed = capsys.readouterr().out
    assert "N=150" in printed and "FID" in printed  # every figure names its N and reference


@pytest.mark.slow
def test_eval_samples_file_scores_real_images_better_than_noise(tmp_path, feature_cache, capsys):
    import numpy as np
    import torch

    from genlab.data import load_digits

    real, _ = load_digits("train")
    np.save(tmp_path / "real.npy", real[:200].numpy())
    torch.save({"samples": (torch.rand(200, 1, 8, 8) * 2 - 1)}, tmp_path / "noise.pt")
    assert main(["eval", "--samples", str(tmp_path / "real.npy"), "--dataset", "digits", "--n", "200"]) == 0
    assert main(["eval", "--samples", str(tmp_path / "noise.pt"), "--dataset", "digits", "--n", "200"]) == 0
    fid_real = json.loads((tmp_path / "real.eval.json").read_text())["metrics"]["FID"]["value"]
    fid_noise = json.loads((tmp_path / "noise.eval.json").read_text())["metrics"]["FID"]["value"]
    assert fid_real < fid_noise / 5


@pytest.mark.parametrize(
    "make, argv, needle",
    [
        (lambda p: np_save(p / "s.npy", (2, 8, 8)), ["--samples", "{tmp}/s.npy", "--dataset", "digits"], "samples"),
        (lambda p: np_save(p / "s.npy", (200, 1, 8, 8), scale=255), ["--samples", "{tmp}/s.npy", "--dataset", "digits"], "[-1, 1]"),
        (lambda p: np_save(p / "s.npy", (20, 1, 8, 8)), ["--samples", "{tmp}/s.npy", "--dataset", "digits"], "N > D"),
        (lambda p: np_save(p / "s.npy", (200, 1, 8, 8)), ["--samples", "{tmp}/s.npy", "--dataset", "svhn"], "unknown data set"),
        (lambda p: np_save(p / "s.npy", (200, 1, 8, 8)), ["--samples", "{tmp}/s.npy"], "--dataset"),
        (lambda p: (p / "s.txt").write_text("x"), ["--samples", "{tmp}/s.txt", "--dataset", "digits"], ".npy"),
        (lambda p: (p / "s.npy").write_bytes(b"not numpy"), ["--samples", "{tmp}/s.npy", "--dataset", "digits"], "cannot read samples"),
        (lambda p: None, ["--ckpt", "{cond}", "--dataset", "mnist"], "trained on digits"),
    ],
)
def test_eval_bad_input_is_one_clear_line(make, argv, needle, trained, tmp_path, feature_cache, capsys):
    make(tmp_path)
    capsys.readouterr()
    assert main(["eval", *[a.format(tmp=tmp_path, cond=trained) for a in argv]]) == 2
    line = error_line(capsys)
    assert line.startswith("genlab: error:") and needle in line, line


def np_save(path, shape, scale=1.0):
    import numpy as np

    np.save(path, (np.random.default_rng(0).uniform(-1, 1, shape) * scale).astype(np.float32))


# --- classifier guidance: train-classifier, sample/eval --classifier ----------------------------


@pytest.fixture(scope="module")
def guided_pair(tmp_path_factory):
    """An unconditional digits model and a noise-aware classifier for it (a few steps each)."""
    run = tmp_path_factory.mktemp("uncond_for_guidance")
    assert main(["train", "--dataset", "digits", "--out", str(run), *TINY]) == 0
    assert main(["train-classifier", "--ckpt", str(run), "--steps", "3", "--batch-size", "16"]) == 0
    return run, run / "classifier"


def test_train_classifier_reports_accuracy_by_noise_level(guided_pair, capsys):
    run, clf = guided_pair
    cfg = json.loads((resolve_checkpoint(clf) / "config.json").read_text())
    info = cfg["metadata"]["noisy_classifier"]
    model_cfg = json.loads((resolve_checkpoint(run) / "config.json").read_text())
    assert info["dataset"] == "digits" and info["num_classes"] == 10
    assert info["process"] == model_cfg["metadata"]["diffusion"]["process"]  # the model's own betas
    # a second run into the same folder is refused, not overwritten
    capsys.readouterr()
    assert main(["train-classifier", "--ckpt", str(run), "--steps", "3"]) == 2
    assert "already" in error_line(capsys)


def test_sample_with_classifier_guidance(guided_pair, tmp_path, capsys):
    run, clf = guided_pair
    out = tmp_path / "g.png"
    assert main(["sample", "--ckpt", str(run), "--classifier", str(clf), "--classifier-scale", "3", "--n", "10", "--steps", "3", "--out", str(out)]) == 0
    assert out.is_file()
    assert main(["sample", "--ckpt", str(run), "--classifier", str(clf), "--class", "4", "--sampler", "ddpm", "--n", "2", "--steps", "3", "--out", str(out)]) == 0


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["sample", "--ckpt", "{run}", "--classifier-scale", "2"], "needs --classifier"),
        (["sample", "--ckpt", "{run}", "--classifier", "{run}"], "not a noise-aware classifier"),
        (["sample", "--ckpt", "{cosine}", "--classifier", "{clf}"], "another noise process"),
        (["sample", "--ckpt", "{toy}", "--classifier", "{clf}"], "trained on digits"),
        (["sample", "--ckpt", "{run}", "--classifier", "{clf}", "--class", "11"], "out of range"),
        (["train-classifier", "--ckpt", "{toy}"], "points"),
        (["train-classifier", "--ckpt", "{tmp}/nothing"], "no checkpoint at"),
    ],
)
def test_classifier_bad_combinations_exit_2(argv, needle, guided_pair, tmp_path, tmp_path_factory, capsys):
    run, clf = guided_pair
    base = tmp_path_factory.getbasetemp()
    cosine, toy = base / "cosine_run", base / "toy_run"
    if not (cosine / "checkpoints").exists():
        assert main(["train", "--dataset", "digits", "--schedule", "cosine", "--out", str(cosine), *TINY]) == 0
    if not (toy / "checkpoints").exists():
        assert main(["train", "--dataset", "toy2d", "--out", str(toy), *TINY]) == 0
    capsys.readouterr()
    assert main([a.format(run=run, clf=clf, cosine=cosine, toy=toy, tmp=tmp_path) for a in argv]) == 2
    assert needle in error_line(capsys)


# ------------------------------------------------------------------------------------------
# GANs: genlab train --model {dcgan,wgan-gp,sngan,stylegan}, genlab sample / eval on their checkpoints
# ------------------------------------------------------------------------------------------


@pytest.fixture
def stand_in_mnist(monkeypatch):
    """28×28 images of the right shape in place of MNIST (the real loader is tested in test_data.py)."""
    import genlab.data

    g = torch.Generator().manual_seed(0)
    fake = (torch.rand(48, 1, 28, 28, generator=g) * 2 - 1, torch.randint(0, 10, (48,), generator=g))
    monkeypatch.setattr(genlab.data, "load_image_dataset", lambda name, split="train": fake)


@pytest.mark.parametrize("model", ["dcgan", "stylegan"])
def test_gan_train_sample_resume(model, stand_in_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    gan = ["train", "--dataset", "mnist", "--model", model, "--width", "4", "--batch-size", "8", "--out", str(out), "--ckpt-every", "2"]
    assert main([*gan, "--steps", "2", "--sample-every", "1"]) == 0
    printed = capsys.readouterr().out
    assert "non_saturating loss" in printed and "done: 2 steps" in printed
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_000001.png", "step_000002.png"]
    assert (out / "loss.png").is_file() and (out / "samples.png").is_file()
    assert main([*gan, "--steps", "3", "--resume"]) == 0 and "done: 3 steps" in capsys.readouterr().out
    extra = ["--truncation", "0.7"] if model == "stylegan" else []
    assert main(["sample", "--ckpt", str(out), "--n", "5", "--out", str(tmp_path / "g.png"), *extra]) == 0
    assert f"{model} generator" in capsys.readouterr().out
    from PIL import Image

    assert Image.open(tmp_path / "g.png").mode == "L"


def test_gan_eval_scores_the_generators_samples(stand_in_mnist, tmp_path, monkeypatch, capsys):
    import genlab.metrics
    from genlab.gan_pipeline import gan_generate, load_gan
    from genlab.metrics.result import MetricResult

    out = tmp_path / "run"
    assert main(["train", "--dataset", "mnist", "--model", "sngan", "--width", "4", "--steps", "1", "--batch-size", "8", "--out", str(out)]) == 0
    seen = {}

    class Report:  # what evaluate() returns, as far as cmd_eval reads it
        results = {"fid": MetricResult("FID", 1.0, n=6, feature_net="stub", checksum="0")}

        def to_dict(self):
            return {"fid": 1.0}

        def describe(self):
            return "stub"

    def fake_evaluate(samples, dataset, n, labels=None, progress=False):
        seen.update(samples=samples, dataset=dataset, n=n, labels=labels)
        return Report()

    monkeypatch.setattr(genlab.metrics, "evaluate", fake_evaluate)
    assert main(["eval", "--ckpt", str(out), "--n", "6", "--seed", "4"]) == 0
    generator, _ = load_gan(out)
    assert seen["dataset"] == "mnist" and seen["n"] == 6 and seen["labels"] is None
    assert torch.equal(seen["samples"], gan_generate(generator, 6, seed=4))
    report = json.loads((out / "eval.json").read_text())
    assert report["model"] == "sngan" and report["truncation"] == 1.0


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["train", "--dataset", "digits", "--model", "dcgan", "--out", "{tmp}/a"], "28×28 and 32×32"),
        (["train", "--dataset", "mnist", "--model", "wgan-gp", "--lr", "0.01", "--out", "{tmp}/b"], "--lr is for diffusion models"),
        (["train", "--dataset", "mnist", "--model", "sngan", "--conditional", "--out", "{tmp}/c"], "--conditional is for diffusion"),
        (["train", "--dataset", "digits", "--width", "8", "--out", "{tmp}/d"], "--width sets a GAN's width"),
        (["sample", "--ckpt", "{gan}", "--steps", "10"], "--steps steers diffusion sampling"),
        (["sample", "--ckpt", "{gan}", "--class", "3", "--sampler", "euler"], "--sampler, --class steer"),
        (["sample", "--ckpt", "{gan}", "--truncation", "0.5"], "needs the StyleGAN generator"),
        (["sample", "--ckpt", "{cond}", "--truncation", "0.5"], "--truncation is for StyleGAN checkpoints"),
        (["eval", "--ckpt", "{gan}", "--dataset", "fashion_mnist"], "trained on mnist"),
    ],
)
def test_gan_bad_input_is_one_clear_line(argv, needle, stand_in_mnist, trained, tmp_path, capsys):
    gan = tmp_path / "gan"
    assert main(["train", "--dataset", "mnist", "--model", "dcgan", "--width", "4", "--steps", "1", "--batch-size", "8", "--out", str(gan)]) == 0
    capsys.readouterr()
    assert main([a.format(gan=gan, cond=trained, tmp=tmp_path) for a in argv]) == 2
    line = error_line(capsys)
    assert line.startswith("genlab: error:") and needle in line
