"""Consistency models from the command line: `genlab train --model consistency [--teacher RUN]`,
`genlab sample` on a consistency checkpoint, and the clear errors."""

from __future__ import annotations

import pytest

from genlab.cli import main

TINY = ["--steps", "4", "--batch-size", "16", "--base-channels", "8", "--channel-mults", "1,2", "--ckpt-every", "2"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("cm") / "teacher"
    assert main(["train", "--dataset", "digits", "--out", str(out), *TINY]) == 0
    return out


def test_distil_train_sample_and_resume(teacher, tmp_path, capsys):
    cd, ct = tmp_path / "cd", tmp_path / "ct"
    assert main(["train", "--dataset", "digits", "--model", "consistency", "--teacher", str(teacher), "--out", str(cd), *TINY]) == 0
    assert (cd / "samples_1step.png").is_file() and (cd / "samples_2step.png").is_file()
    assert main(["train", "--dataset", "digits", "--model", "consistency", "--conditional", "--out", str(ct), *TINY]) == 0
    png = tmp_path / "s.png"
    assert main(["sample", "--ckpt", str(ct), "--steps", "3", "--n", "10", "--class", "4", "--out", str(png)]) == 0
    assert png.is_file() and "3 steps = 3 network calls per sample" in capsys.readouterr().out
    assert main(["train", "--dataset", "digits", "--model", "consistency", "--conditional", "--out", str(ct), "--resume",
                 *TINY[2:], "--steps", "6"]) == 0  # fmt: skip


def test_clear_errors(teacher, tmp_path, capsys):
    cd = tmp_path / "cd"
    assert main(["train", "--dataset", "digits", "--model", "consistency", "--teacher", str(teacher), "--out", str(cd), *TINY]) == 0
    capsys.readouterr()
    cases = [
        (["train", "--dataset", "digits", "--teacher", str(teacher), "--out", str(tmp_path / "x")], "add --model consistency"),
        (["train", "--dataset", "mnist", "--model", "consistency", "--teacher", str(teacher), "--out", str(tmp_path / "x")], "--dataset digits"),
        (["train", "--dataset", "digits", "--model", "consistency", "--flow", "ot", "--out", str(tmp_path / "x")], "not a consistency model"),
        (["train", "--dataset", "digits", "--model", "consistency", "--conditional", "--teacher", str(teacher), "--out", str(tmp_path / "x")],
         "teacher is unconditional"),
        (["sample", "--ckpt", str(cd), "--sampler", "ddim", "--out", str(tmp_path / "s.png")], "consistency model"),
        (["sample", "--ckpt", str(cd), "--class", "3", "--out", str(tmp_path / "s.png")], "unconditional"),
        (["train", "--dataset", "digits", "--model", "consistency", "--teacher", str(teacher), "--out", str(cd), *TINY], "already"),
    ]  # fmt: skip
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (argv, err)
