""""MNIST in 5 minutes": train genlab's default U-Net for a fixed wall-clock budget on real MNIST
on this CPU, sample 1000 digits with DDIM, and measure how readable they are.

    GENLAB_DATA=../shared/data/mnist python benchmarks/mnist_5min.py [--seconds 300]

Data: the MNIST split found in $GENLAB_DATA (here the 10 000-image test split, used as training
data for this benchmark only): the first 8 000 images train the diffusion model; the other
2 000, which it never sees, train (1 500) and test (500) the judge, a small CNN.
Model: class-conditional (condition dropout 0.1), ε-prediction, linear schedule, T = 1000, EMA.
Sampling: 100 images per digit, DDIM with 50 trailing steps, classifier-free guidance w.
Readability: the judge's accuracy on the samples (is it the digit that was asked for?) and its
mean confidence. The number of steps is set from the throughput measured in a short warm-up,
so that training takes about --seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, header, save  # noqa: E402

from genlab.data import load_mnist  # noqa: E402
from genlab.errors import GenlabError  # noqa: E402
from genlab.nn import count_parameters  # noqa: E402
from genlab.nn.classifier import ConvClassifier, ConvClassifierConfig, train_classifier  # noqa: E402
from genlab.pipeline import DiffusionSpec, TrainOptions, generate, train_diffusion  # noqa: E402
from genlab.viz import save_grid  # noqa: E402


def load(split_preference=("train", "test")):
    for split in split_preference:
        try:
            return load_mnist(split, download=False), split
        except GenlabError:
            continue
    raise SystemExit(f"no MNIST files under GENLAB_DATA={os.environ.get('GENLAB_DATA', '(unset)')}: point it at a folder with the IDX files (e.g. ../shared/data/mnist)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=300.0, help="training wall-clock budget")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--guidance", type=float, default=2.0)
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--sampling-steps", type=int, default=50)
    ap.add_argument("--min-snr-gamma", type=float, default=None)
    ap.add_argument("--tag", default="mnist_5min")
    args = ap.parse_args()
    info = header('"MNIST in 5 minutes" on this CPU')
    (images, labels), split = load(("test", "train"))
    train_x, train_y = images[:8000], labels[:8000]
    judge_x, judge_y = images[8000:9500], labels[8000:9500]
    check_x, check_y = images[9500:10000], labels[9500:10000]
    print(f"data: MNIST {split} split from {os.environ.get('GENLAB_DATA')}: {len(train_x)} images train the diffusion model, "
          f"{len(judge_x)}/{len(check_x)} held-out images train/test the judge")  # fmt: skip

    spec = DiffusionSpec(dataset="mnist", shape=(1, 28, 28), num_classes=10)
    # Calibrate: two short runs (8 and 40 steps) measure steps/s without start-up costs; that rate,
    # less a 15 % margin for what the short runs miss, sets the number of steps for the budget.
    def timed(steps: int) -> float:
        t0 = time.perf_counter()
        train_diffusion(spec, (train_x, train_y), TrainOptions(steps=steps, batch_size=args.batch, ckpt_every=0), progress=False)
        return time.perf_counter() - t0

    short = timed(8)  # first: it also pays the one-off start-up costs
    rate = 32 / (timed(40) - short)
    steps = max(int(args.seconds * rate * 0.85), 10)
    print(f"calibration: {rate * args.batch:.0f} images/s → {steps} steps of {args.batch} in ≈{args.seconds:.0f} s", flush=True)

    options = TrainOptions(steps=steps, batch_size=args.batch, lr=args.lr, ckpt_every=0, min_snr_gamma=args.min_snr_gamma)
    t0 = time.perf_counter()
    result = train_diffusion(spec, (train_x, train_y), options, progress=True)
    train_s = time.perf_counter() - t0
    model = result.best_model.eval()
    print(f"trained {steps} steps ({steps * args.batch / len(train_x):.1f} epochs) in {train_s:.0f} s; "
          f"{count_parameters(model) / 1e6:.2f} M parameters; final loss {sum(result.losses[-100:]) / 100:.4f}", flush=True)  # fmt: skip

    want = torch.arange(10).repeat_interleave(args.per_class)
    t0 = time.perf_counter()
    samples = generate(model, spec, len(want), steps=args.sampling_steps, labels=want, guidance=args.guidance, seed=0, progress=True)
    sample_s = time.perf_counter() - t0
    grid_path = RESULTS / f"{args.tag}_samples.png"
    RESULTS.mkdir(exist_ok=True)
    rows = samples.reshape(10, args.per_class, 1, 28, 28)[:, :12].reshape(-1, 1, 28, 28)  # 12 per digit
    save_grid(rows, grid_path, nrow=min(12, args.per_class), scale=2)

    torch.manual_seed(0)
    judge = train_classifier(ConvClassifier(ConvClassifierConfig(image_size=28)), judge_x, judge_y, steps=600, lr=2e-3, progress=False).eval()
    with torch.no_grad():
        judge_acc = (judge(check_x).argmax(1) == check_y).float().mean().item()
        real_conf = judge(check_x).softmax(1).max(1).values.mean().item()
        probs = torch.cat([judge(samples[i : i + 500]).softmax(1) for i in range(0, len(samples), 500)])
    acc = (probs.argmax(1) == want).float().mean().item()
    conf = probs.max(1).values.mean().item()
    print(f"sampling: {len(want)} images, DDIM {args.sampling_steps} steps, guidance w={args.guidance}: {sample_s:.0f} s ({len(want) / sample_s:.1f} images/s)")
    print(f"judge (CNN on {len(judge_x)} held-out real images): {judge_acc:.1%} accuracy on {len(check_x)} real test images, mean confidence {real_conf:.2f}")
    print(f"samples: {acc:.1%} read as the digit asked for, mean confidence {conf:.2f}; grid: {grid_path}")
    save(args.tag, {
        **info, "split": split, "train_images": len(train_x), "steps": steps, "batch": args.batch, "train_seconds": train_s,
        "train_images_per_s": steps * args.batch / train_s, "params": count_parameters(model),
        "sampling_steps": args.sampling_steps, "guidance": args.guidance, "samples": len(want), "sample_seconds": sample_s,
        "judge_accuracy_real": judge_acc, "judge_confidence_real": real_conf,
        "sample_accuracy": acc, "sample_confidence": conf, "min_snr_gamma": args.min_snr_gamma,
        "grid": str(grid_path.relative_to(RESULTS.parent.parent)),
    })  # fmt: skip


if __name__ == "__main__":
    main()
