"""A tiny training run for test_checkpoint's SIGKILL test: ``python ckpt_worker.py OUT [--slow]``.

Trains a small MLP (with dropout) into OUT, resuming when OUT holds a checkpoint. It prints one
line per event, flushed, so that the test can SIGKILL it at a chosen point: ``step N`` before each
step, ``fsync NAME`` before each fsync of a checkpoint write (with ``--slow`` it then sleeps a
little, so that a kill lands inside the write), ``saved N`` once a checkpoint is committed,
``resumed N`` / ``fresh`` at the start and ``done`` at the end.
"""

import sys
import time

import torch

torch.set_num_threads(1)

from torch import nn  # noqa: E402

from genlab.train import TrainConfig, fit  # noqa: E402
from genlab.train import checkpoint as ckpt_io  # noqa: E402

STEPS, CKPT_EVERY = 40, 4


def say(line: str) -> None:
    print(line, flush=True)


def main(out: str, slow: bool) -> None:
    fsync, save = ckpt_io._fsync, ckpt_io.save_checkpoint

    def noisy_fsync(path):
        say(f"fsync {path.name}")
        if slow:
            time.sleep(0.01)
        fsync(path)

    def saying_save(*args, **kwargs):
        folder = save(*args, **kwargs)
        say(f"saved {kwargs['step']}")
        return folder

    ckpt_io._fsync, ckpt_io.save_checkpoint = noisy_fsync, saying_save

    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 4, generator=g)
    y = torch.sin(x.sum(1, keepdim=True))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 32), nn.Dropout(0.2), nn.Tanh(), nn.Linear(32, 1))

    def loss_fn(model, batch, generator):
        say(f"step {len(steps)}")
        steps.append(1)
        xb, yb = batch
        return ((model(xb + 0.05 * torch.randn(xb.shape, generator=generator)) - yb) ** 2).mean()

    resume = ckpt_io.has_checkpoint(out)
    if resume:
        import json

        start = json.loads((ckpt_io.resolve_checkpoint(out) / "state.json").read_text())["step"]
        say(f"resumed {start}")
    else:
        start = 0
        say("fresh")
    steps = [1] * start
    config = TrainConfig(steps=STEPS, batch_size=32, lr=3e-3, warmup_steps=3, ema_decay=0.9, seed=1, ckpt_every=CKPT_EVERY, device="cpu")
    fit(model, loss_fn, (x, y), config, out_dir=out, resume=resume, identity={"worker": 1}, progress=False)
    say("done")


if __name__ == "__main__":
    main(sys.argv[1], "--slow" in sys.argv[2:])
