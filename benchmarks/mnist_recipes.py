"""Which training recipe pays in a fixed CPU budget on MNIST: a screen of objectives, network sizes,
batch sizes and EMA, each trained for the same wall-clock time and scored by FID at the same N.

    GENLAB_DATA=../shared/data/mnist python benchmarks/mnist_recipes.py [--seconds 150] [--n 1000]
    python benchmarks/mnist_recipes.py --only base,minsnr --quick     # a smoke run, nothing saved

The protocol is mnist_5min.py's (same data split, reference, feature network, DDIM-50 sampler, budget
calibrated from each recipe's own throughput), at a shorter budget and a smaller N so that many
recipes fit in one run; its figures are comparable with each other, not with mnist_5min.py's.
All recipes are calibrated first, back to back (a few seconds each), and only then trained: the
step counts, which decide the result, come from one short window of measurement. Each recipe is
scored twice: sampled from its EMA weights and from its raw weights.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import header, save  # noqa: E402
from mnist_5min import calibrate, steps_for, train_steps  # noqa: E402

from genlab.metrics import evaluate, feature_network, generator_training_set  # noqa: E402
from genlab.pipeline import DiffusionSpec, TrainOptions, build_model, generate  # noqa: E402

SMALL = dict(base_channels=16, channel_mults=(1, 2, 4))  # ~0.55 M parameters, ~2× the default's throughput
TINY = dict(base_channels=16, channel_mults=(1, 2, 2))  # ~0.22 M parameters
# name: (what it changes, DiffusionSpec overrides, TrainOptions overrides, U-Net overrides)
RECIPES = {
    "base": ("the course default: ε, L_simple, 0.9 M U-Net, batch 128, lr 2e-3, EMA 0.995", {}, {}, {}),
    "minsnr": ("Min-SNR-5 weighting", {}, dict(min_snr_gamma=5.0), {}),
    "v_minsnr": ("v-prediction with Min-SNR-5", dict(prediction="v"), dict(min_snr_gamma=5.0), {}),
    "x0": ("x₀-prediction", dict(prediction="x0"), {}, {}),
    "cosine": ("cosine schedule", dict(schedule="cosine"), {}, {}),
    "batch64": ("batch 64 (twice the steps)", {}, dict(batch_size=64), {}),
    "lr4e-3": ("lr 4e-3", {}, dict(lr=4e-3), {}),
    "ema0.99": ("EMA 0.99", {}, dict(ema_decay=0.99), {}),
    "small": ("16-32-64 channels, 0.55 M", {}, {}, SMALL),
    "small_minsnr": ("16-32-64 channels with Min-SNR-5", {}, dict(min_snr_gamma=5.0), SMALL),
    "small_b64": ("16-32-64 channels, batch 64", {}, dict(batch_size=64), SMALL),
    "tiny": ("16-32-32 channels, 0.22 M", {}, {}, TINY),
    "noattn": ("no attention at 7×7 (the middle keeps its own)", {}, {}, dict(attention_resolutions=())),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=150.0, help="training wall-clock budget per recipe")
    ap.add_argument("--n", type=int, default=1000, help="samples scored, and real reference images")
    ap.add_argument("--only", default=",".join(RECIPES), help=f"comma-separated recipes out of {', '.join(RECIPES)}")
    ap.add_argument("--steps", default="", help="fixed step counts instead of calibrating, e.g. base=260,small=483 (taken from "
                    "an earlier quiet calibration: a run on a busy machine then measures the same thing)")
    ap.add_argument("--quick", action="store_true", help="15 s budgets, N = 200, nothing saved")
    args = ap.parse_args()
    names = args.only.split(",")
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        raise SystemExit(f"unknown recipe(s) {', '.join(unknown)}; choose from {', '.join(RECIPES)}")
    if args.quick:
        args.seconds, args.n = 15.0, 200
    info = header(f"MNIST training recipes, {args.seconds:.0f} s each")
    net = feature_network("mnist", progress=False)
    train_x, _ = generator_training_set(net, args.n)
    print(f"data: {len(train_x)} training images; reference: {args.n} real {net.reference} images; features: {net.describe()}")
    try:
        fixed = {k: int(v) for k, v in (item.split("=") for item in args.steps.split(",") if item)}
    except ValueError:
        raise SystemExit(f"--steps: write name=N pairs separated by commas, got {args.steps!r}") from None
    setups = {}
    for name in names:
        what, spec_o, opt_o, unet_o = RECIPES[name]
        spec = DiffusionSpec(dataset="mnist", shape=(1, 28, 28), **spec_o)
        options = dataclasses.replace(TrainOptions(), **opt_o)
        make = lambda spec=spec, o=unet_o: build_model(spec, **o)  # noqa: E731
        if name in fixed:
            steps = fixed[name]
            print(f"{name}: {steps} steps of {options.batch_size} (given)", flush=True)
        else:
            steps = steps_for(args.seconds, calibrate(make, spec, (train_x,), options))
            print(f"calibrated {name}: {steps} steps of {options.batch_size} fit {args.seconds:.0f} s", flush=True)
        setups[name] = (what, spec, options, make, steps)
    rows = {}
    for name, (what, spec, options, make, steps) in setups.items():
        print(f"{name}: {what}", flush=True)
        ema, raw, stats = train_steps(make, spec, (train_x,), options, steps, progress=False)
        row = {"what": what, **{k: v for k, v in stats.items()}}
        for weights, model in (("ema", ema), ("raw", raw)):
            t0 = time.perf_counter()
            samples = generate(model, spec, args.n, steps=50, seed=0)
            ev = evaluate(samples, "mnist", n=args.n, net=net, metrics=("fid", "kid"))
            row[weights] = {"FID": ev["FID"].value, "KID": ev["KID"].value, "KID_std": ev["KID"].std,
                            "sample_seconds": time.perf_counter() - t0}
        print(f"  {stats['steps']} steps, {stats['train_images_per_s']:.0f} images/s, {stats['params'] / 1e6:.2f} M; "
              f"FID EMA {row['ema']['FID']:.1f}, raw {row['raw']['FID']:.1f}", flush=True)  # fmt: skip
        rows[name] = row
    print(f"\n{'recipe':14s} {'steps':>6s} {'img/s':>6s} {'FID ema':>8s} {'FID raw':>8s}  (N={args.n}, {net.describe()})")
    for name, r in sorted(rows.items(), key=lambda kv: min(kv[1]["ema"]["FID"], kv[1]["raw"]["FID"])):
        print(f"{name:14s} {r['steps']:6d} {r['train_images_per_s']:6.0f} {r['ema']['FID']:8.1f} {r['raw']['FID']:8.1f}  {r['what']}")
    if args.quick:
        print("quick run: nothing saved")
        return
    save("mnist_recipes", {**info, "seconds_budget": args.seconds, "given_steps": fixed, "n": args.n, "sampler": "DDIM 50 steps (trailing), η = 0",
                           "reference": f"{args.n} real {net.reference} images", "feature_net": net.describe(),
                           "train_images": len(train_x), "rows": rows})  # fmt: skip


if __name__ == "__main__":
    main()
