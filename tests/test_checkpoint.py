import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from genlab.errors import CheckpointError
from genlab.nn.unet import UNet, UNetConfig
from genlab.nn.vae import VAE, VAEConfig
from genlab.train import RunExistsError, TrainConfig, fit, load_model, read_config, resolve_checkpoint, save_checkpoint
from genlab.train.checkpoint import FORMAT, load_tensors, model_spec

TESTS = Path(__file__).parent


def small_unet(seed=0):
    torch.manual_seed(seed)
    return UNet(UNetConfig(image_size=8, base_channels=8, channel_mults=(1, 2), attention_resolutions=(), num_res_blocks=1))


def versions(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir() if p.is_dir())


def pointer(run: Path) -> str:
    return (run / "checkpoints" / "LATEST").read_text().strip()


def step_of(folder: Path) -> int:
    return json.loads((folder / "config.json").read_text())["step"]


def three_versions(run: Path, model: nn.Module) -> None:
    """Checkpoints at steps 1, 2, 3 (the writer keeps 2 and 3)."""
    for step in (1, 2, 3):
        save_checkpoint(run, model, step=step)


# --------------------------------------------------------------------------- layout


def test_layout_keeps_the_previous_version(tmp_path):
    three_versions(tmp_path, small_unet())
    assert versions(tmp_path) == ["000002", "000003"] and pointer(tmp_path) == "000003"
    folder = resolve_checkpoint(tmp_path)
    assert folder == tmp_path / "checkpoints" / "000003"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    cfg = read_config(tmp_path)
    assert cfg["format"] == FORMAT and cfg["version"] == 2 and cfg["step"] == 3
    assert cfg["files"] == {"model.safetensors": (folder / "model.safetensors").stat().st_size}


def test_fit_writes_versions_with_state(tmp_path):
    x = torch.randn(64, 3)
    fit(nn.Linear(3, 1), lambda m, b, g: (m(b[0]) ** 2).mean(), (x,), TrainConfig(steps=10, ckpt_every=3, ema_decay=0.9), out_dir=tmp_path, metadata={"note": [1, 2]}, progress=False)
    assert versions(tmp_path) == ["000009", "000010"] and pointer(tmp_path) == "000010"
    folder = resolve_checkpoint(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "ema.safetensors", "model.safetensors", "state.json", "state.safetensors"]
    cfg = read_config(tmp_path)
    assert cfg["metadata"] == {"note": [1, 2]} and cfg["train_config"]["steps"] == 10 and cfg["has_ema"]
    assert set(load_tensors(folder / "ema.safetensors")) == set(nn.Linear(3, 1).state_dict())  # the model's own keys
    state = json.loads((folder / "state.json").read_text())
    assert state["step"] == 10 and len(state["history"]["loss"]) == 10 and state["emas"]["model"]["updates"] == 10


def test_same_step_twice_gets_a_new_name(tmp_path):
    model = small_unet()
    save_checkpoint(tmp_path, model)
    save_checkpoint(tmp_path, model)
    save_checkpoint(tmp_path, model)
    assert versions(tmp_path) == ["000000.1", "000000.2"] and pointer(tmp_path) == "000000.2"


def test_writer_refuses_non_finite_weights(tmp_path):
    model = small_unet()
    save_checkpoint(tmp_path, model, step=1)
    with torch.no_grad():
        next(model.parameters())[0] = float("nan")
    with pytest.raises(CheckpointError, match="not finite"):
        save_checkpoint(tmp_path, model, step=2)
    assert versions(tmp_path) == ["000001"] and [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")] == []


# --------------------------------------------------------------------------- resolve_checkpoint


def test_resolve_accepts_run_checkpoints_and_version_folders(tmp_path):
    three_versions(tmp_path, small_unet())
    latest = tmp_path / "checkpoints" / "000003"
    assert resolve_checkpoint(tmp_path) == latest
    assert resolve_checkpoint(tmp_path / "checkpoints") == latest
    older = tmp_path / "checkpoints" / "000002"
    assert resolve_checkpoint(older) == older
    _, cfg = load_model(older)
    assert cfg["step"] == 2


def test_resolve_when_the_pointer_is_missing(tmp_path):
    three_versions(tmp_path, small_unet())
    (tmp_path / "checkpoints" / "LATEST").unlink()  # a crash before the first pointer was written
    assert resolve_checkpoint(tmp_path).name == "000003"


def test_resolve_when_the_pointer_is_stale(tmp_path):
    three_versions(tmp_path, small_unet())
    (tmp_path / "checkpoints" / "LATEST").write_text("000001\n")  # names a pruned version
    with pytest.warns(UserWarning, match="000001"):
        assert resolve_checkpoint(tmp_path).name == "000003"
    (tmp_path / "checkpoints" / "LATEST").write_text("garbage\n")
    assert resolve_checkpoint(tmp_path).name == "000003"


def test_resolve_prefers_the_pointer_over_an_uncommitted_newer_version(tmp_path):
    three_versions(tmp_path, small_unet())
    # A crash after the rename of 000003 and before LATEST switched: the pointer still names 000002.
    (tmp_path / "checkpoints" / "LATEST").write_text("000002\n")
    assert resolve_checkpoint(tmp_path).name == "000002"
    # The next write commits a new name and prunes the uncommitted one.
    save_checkpoint(tmp_path, small_unet(), step=3)
    assert versions(tmp_path) == ["000002", "000003.1"] and pointer(tmp_path) == "000003.1"


def test_resolve_skips_a_half_written_version(tmp_path):
    three_versions(tmp_path, small_unet())
    latest = tmp_path / "checkpoints" / "000003"
    with open(latest / "model.safetensors", "r+b") as f:  # truncated: the size no longer matches config.json
        f.truncate(100)
    with pytest.warns(UserWarning, match="000003 is incomplete .*model.safetensors has 100 bytes"):
        assert resolve_checkpoint(tmp_path).name == "000002"
    with pytest.warns(UserWarning):
        _, cfg = load_model(tmp_path)
    assert cfg["step"] == 2
    (latest / "config.json").write_text('{"format": "genlab-checkpoint", "vers')  # and a torn config
    with pytest.warns(UserWarning, match="unreadable"):
        assert resolve_checkpoint(tmp_path).name == "000002"
    with pytest.raises(CheckpointError, match="000003 is corrupt: config.json is unreadable"):
        resolve_checkpoint(latest)


def test_leftover_temp_folders_are_ignored_then_removed(tmp_path):
    model = small_unet()
    save_checkpoint(tmp_path, model, step=1)
    junk = tmp_path / "checkpoints" / ".tmp-000002-999"
    junk.mkdir()
    (junk / "model.safetensors").write_bytes(b"half")
    (tmp_path / "checkpoints" / ".tmp-LATEST-999").write_text("000002")
    assert resolve_checkpoint(tmp_path).name == "000001"
    save_checkpoint(tmp_path, model, step=2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["000001", "000002", "LATEST"]


def test_no_checkpoint_at_all(tmp_path):
    with pytest.raises(CheckpointError, match=f"no checkpoint at {tmp_path}"):
        resolve_checkpoint(tmp_path)
    (tmp_path / "checkpoints" / ".tmp-000001-1").mkdir(parents=True)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_model(tmp_path)


def test_only_a_damaged_version_is_a_clear_error(tmp_path):
    save_checkpoint(tmp_path, small_unet(), step=1)
    (resolve_checkpoint(tmp_path) / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="000001 is corrupt: model.safetensors has 20 bytes"):
        load_model(tmp_path)


def test_old_layout_still_loads_but_does_not_resume(tmp_path):
    """genlab ≤ issue 6 wrote one folder run/checkpoint/ (format version 1, no file sizes)."""
    model = small_unet().eval()
    old = tmp_path / "checkpoint"
    old.mkdir()
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(old / "model.safetensors"))
    cfg = {"format": FORMAT, "version": 1, "step": 7, "model": model_spec(model), "has_ema": False, "metadata": {"diffusion": {"T": 10}}}
    (old / "config.json").write_text(json.dumps(cfg))

    loaded, info = load_model(tmp_path)
    assert info["step"] == 7 and info["metadata"] == {"diffusion": {"T": 10}}
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([1, 2])
    assert torch.equal(loaded(x, t), model(x, t))
    assert resolve_checkpoint(old) == old

    data = (torch.randn(16, 1, 8, 8),)
    loss = lambda m, b, g: (m(b[0], torch.zeros(len(b[0]), dtype=torch.long)) ** 2).mean()  # noqa: E731
    with pytest.raises(CheckpointError, match="older genlab"):
        fit(small_unet(), loss, data, TrainConfig(steps=2, batch_size=8), out_dir=tmp_path, resume=True, progress=False)
    with pytest.raises(RunExistsError):
        fit(small_unet(), loss, data, TrainConfig(steps=2, batch_size=8), out_dir=tmp_path, progress=False)


# --------------------------------------------------------------------------- config types


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("base_channels", "32", r"UNet\.base_channels is '32' \(str\), expected int"),
        ("base_channels", [32], r"UNet\.base_channels is \[32\] \(list\), expected int"),
        ("base_channels", True, r"UNet\.base_channels is True \(bool\), expected int"),
        ("base_channels", 32.5, r"expected int"),
        ("channel_mults", [1, "2"], r"UNet\.channel_mults is \[1, '2'\] \(list\), expected tuple\[int, \.\.\.\]"),
        ("channel_mults", 2, r"expected tuple\[int, \.\.\.\]"),
        ("dropout", "0.1", r"UNet\.dropout is '0\.1' \(str\), expected float"),
        ("dropout", None, r"expected float"),
    ],
)
def test_config_values_are_type_checked(tmp_path, field, value, expected):
    save_checkpoint(tmp_path, small_unet())
    path = resolve_checkpoint(tmp_path) / "config.json"
    cfg = json.loads(path.read_text())
    for spec in (cfg["model"], cfg["models"]["model"]):
        spec["config"][field] = value
    path.write_text(json.dumps(cfg))  # same size as before is not required: config.json is not in its own list
    with pytest.raises(CheckpointError, match=expected) as err:
        load_model(tmp_path)
    assert "\n" not in str(err.value) and "config.json" in str(err.value)


def test_config_types_accept_what_json_gives(tmp_path):
    """Lists for tuples, an int where a float belongs, None for an Optional."""
    torch.manual_seed(0)
    model = VAE(VAEConfig(kind="mlp", image_size=8, latent_dim=2, hidden=None))
    save_checkpoint(tmp_path, model)
    path = resolve_checkpoint(tmp_path) / "config.json"
    cfg = json.loads(path.read_text())
    cfg["models"]["model"]["config"]["beta"] = 1  # written by hand: 1 rather than 1.0
    path.write_text(json.dumps(cfg))
    loaded, _ = load_model(tmp_path)
    assert loaded.config == model.config and isinstance(loaded.config.beta, float)
    cfg["models"]["model"]["config"]["hidden"] = [16, 8]
    path.write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="do not fit"):  # right types, other architecture
        load_model(tmp_path)
    cfg["models"]["model"]["config"]["hidden"] = "16,8"
    path.write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"VAE\.hidden is '16,8' \(str\), expected tuple\[int, \.\.\.\] \| None"):
        load_model(tmp_path)


# --------------------------------------------------------------------------- SIGKILL


def run_worker(out: Path, *, slow: bool, kill_at: tuple[str, int] | None = None) -> tuple[list[str], int]:
    """Run ckpt_worker.py; ``kill_at=("fsync", 3)`` SIGKILLs it right after its 3rd "fsync …" line."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(TESTS / "ckpt_worker.py"), str(out), *(["--slow"] if slow else [])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    lines, seen = [], 0
    for line in proc.stdout:
        lines.append(line.strip())
        if kill_at is not None and line.startswith(kill_at[0] + " "):
            seen += 1
            if seen == kill_at[1]:
                proc.send_signal(signal.SIGKILL)
                break
    proc.stdout.close()
    rc = proc.wait(timeout=120)
    stderr = proc.stderr.read()
    proc.stderr.close()
    assert rc in (0, -signal.SIGKILL), stderr
    return lines, rc


def final_files(run: Path) -> dict:
    folder = resolve_checkpoint(run)
    tensors = {f: load_tensors(folder / f) for f in ("model.safetensors", "ema.safetensors", "state.safetensors")}
    return {"tensors": tensors, "state": json.loads((folder / "state.json").read_text())}


@pytest.mark.slow  # 7 fresh Python processes importing torch: ~20 s on an idle 2-core machine, more when busy
def test_sigkill_at_random_points_then_resume_is_exact(tmp_path):
    """SIGKILL a training process 5 times — inside checkpoint writes (before one of their fsyncs,
    the writer sleeping there) and between steps — and resume each time: every resume starts at or
    after the last committed checkpoint, and the end is bit-identical to an uninterrupted run."""
    reference, _ = run_worker(tmp_path / "ref", slow=False)
    assert reference[0] == "fresh" and reference[-1] == "done"
    run, committed, kinds = tmp_path / "killed", 0, []
    for seed in range(5):
        rng = random.Random(seed)
        kill_at = ("fsync", rng.randint(1, 14)) if seed % 2 == 0 else ("step", rng.randint(2, 7))
        lines, rc = run_worker(run, slow=True, kill_at=kill_at)
        assert rc == -signal.SIGKILL, f"the run ended before {kill_at}"
        start = int(lines[0].split()[1]) if lines[0].startswith("resumed") else 0
        assert start >= committed  # never behind a checkpoint that was reported saved
        committed = max([committed] + [int(line.split()[1]) for line in lines if line.startswith("saved")])
        kinds.append(lines[-1].split()[0])
    assert kinds == ["fsync", "step"] * 2 + ["fsync"]
    lines, rc = run_worker(run, slow=True)
    assert rc == 0 and lines[-1] == "done"
    assert (int(lines[0].split()[1]) if lines[0].startswith("resumed") else 0) >= committed
    ref, got = final_files(tmp_path / "ref"), final_files(run)
    assert got["state"] == ref["state"]  # step, loss history, optimiser settings, EMA counter
    for file, tensors in ref["tensors"].items():  # weights, EMA, optimiser moments, RNG states
        assert tensors.keys() == got["tensors"][file].keys()
        for k, v in tensors.items():
            assert torch.equal(v, got["tensors"][file][k]), (file, k)
