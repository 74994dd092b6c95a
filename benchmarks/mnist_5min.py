""""MNIST in 5 minutes" (and "Fashion-MNIST in 5 minutes"): train for a fixed wall-clock budget on
this CPU, sample N images with DDIM, and score them with genlab.metrics against N real held-out
images — next to the floor (N real training images) and a peer (diffusers' UNet2DModel).

    GENLAB_DATA=../shared/data/mnist python benchmarks/mnist_5min.py [--seconds 300] [--n 2000]
    GENLAB_DATA=... python benchmarks/mnist_5min.py --dataset fashion_mnist
    python benchmarks/mnist_5min.py --quick      # a smoke run: 15 s budgets, N = 300, result not saved

Steps vs quality (--study, on by default for MNIST): the unconditional genlab model, sampled with
DDIM 10/20/50/100 steps and with DDPM's 1000 ancestral steps, --study-n samples each (fewer than N:
DDPM-1000 costs 20× DDIM-50), scored against as many reference images; wall time of each sampler.

Reference: the first N images of genlab's fixed permutation of the held-out split of the feature
network (``genlab.metrics.reference_stats``); offline, with only the MNIST test split, the feature
network trains on test half A and the reference comes from half B. Training data for every model:
``genlab.metrics.generator_training_set`` — every real image except those N, so no model sees a
reference image. Rows, all measured in this one run, all at the same N:

- floor: N real training images (a random draw of the models' training data), i.e. what a perfect
  generator that reproduced its training distribution would score.
- genlab: the course default (``genlab train``): DiffusionSpec defaults (linear β, T = 1000,
  ε-prediction), genlab's U-Net (~0.9 M parameters), TrainOptions defaults (AdamW lr 2e-3, warm-up,
  cosine decay, EMA 0.995), unconditional.
- genlab, class-conditional: the same with 10 classes (condition dropout 0.1), N/10 samples per class,
  no guidance unless --guidance (conditional accuracy: the feature net's classifier agrees with the
  class asked for).
- peer: diffusers' UNet2DModel of matched size (block_out_channels (32, 56, 56), one layer per block,
  attention at the lowest level: the "0.9M" pair of unet_throughput.py), trained by the same trainer
  with the same objective (L_simple; --min-snr-gamma and --prediction change only genlab's rows),
  optimiser, LR schedule, EMA, batch, data and budget, sampled by the same
  DDIM sampler. Only the network differs.

Budget: each model's number of steps is set from its own throughput, measured in two short runs
(8 and 40 steps, whose difference removes start-up costs), less a 15 % margin. Sampling is not
part of the budget; its time is reported.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, feature_network_or_exit, header, save  # noqa: E402

from genlab.metrics import evaluate, generator_training_set  # noqa: E402
from genlab.nn import count_parameters  # noqa: E402
from genlab.pipeline import DiffusionSpec, TrainOptions, build_model, generate, make_loss, train_config  # noqa: E402
from genlab.train import fit  # noqa: E402
from genlab.viz import save_grid  # noqa: E402
from unet_throughput import DiffusersEps, diffusers_kwargs  # noqa: E402  (the "0.9M" peer of that benchmark)

METRICS = ("fid", "kid", "is", "precision_recall")


def _run(make_model, loss_fn, data, options: TrainOptions, steps: int, progress: bool = False):
    torch.manual_seed(options.seed)
    model = make_model()
    o = dataclasses.replace(options, steps=steps, ckpt_every=0)
    t0 = time.perf_counter()
    result = fit(model, loss_fn, data, train_config(o), progress=progress)
    return result, time.perf_counter() - t0


def calibrate(make_model, spec: DiffusionSpec, data, options: TrainOptions) -> float:
    """Training steps per second of ``make_model()``, from two short runs (8 and 40 steps) whose
    difference removes the start-up costs."""
    loss_fn = make_loss(spec, options)
    short = _run(make_model, loss_fn, data, options, 8)[1]  # first: it also pays the one-off start-up costs
    return 32 / max(_run(make_model, loss_fn, data, options, 40)[1] - short, 1e-3)


def steps_for(seconds: float, rate: float) -> int:
    """The step count that fits ``seconds`` at ``rate`` steps/s, less a 15 % margin."""
    return max(int(seconds * rate * 0.85), 10)


def train_steps(make_model, spec: DiffusionSpec, data, options: TrainOptions, steps: int, progress: bool):
    """Train a fresh ``make_model()`` for ``steps`` steps. Returns ``(ema, raw, stats)``: the EMA
    weights (the ones sampled; ``raw`` if EMA is off), the raw weights, and the step count, time,
    throughput, size and final loss."""
    result, train_s = _run(make_model, make_loss(spec, options), data, options, steps, progress)
    raw = result.model.eval()
    model = result.ema.eval() if result.ema is not None else raw
    return model, raw, {"steps": steps, "train_seconds": train_s, "train_images_per_s": steps * options.batch_size / train_s,
                        "params": count_parameters(model), "final_loss": sum(result.losses[-50:]) / len(result.losses[-50:])}


def train_for(make_model, spec: DiffusionSpec, data, options: TrainOptions, seconds: float, progress: bool):
    """Train a fresh ``make_model()`` for about ``seconds``: calibrate steps/s, then one full run
    (see :func:`train_steps` for what it returns)."""
    steps = steps_for(seconds, calibrate(make_model, spec, data, options))
    print(f"  calibration: {steps} steps of {options.batch_size} fit {seconds:.0f} s", flush=True)
    return train_steps(make_model, spec, data, options, steps, progress)


def scored(samples, dataset, n, labels, net) -> dict:
    ev = evaluate(samples, dataset, n=n, labels=labels, net=net, metrics=METRICS)
    print("  " + ev.describe().replace("\n", "\n  "), flush=True)
    return {name: {"value": r.value, "std": r.std} for name, r in ev.results.items()} | {"describe": ev.describe()}


def parse_sampler(text: str) -> tuple[str, int]:
    """"ddim50" → ("ddim", 50)."""
    kind = text.rstrip("0123456789")
    if kind not in ("ddim", "ddpm") or kind == text:
        raise SystemExit(f"--study: {text!r} is not a sampler; write ddimN or ddpmN, e.g. ddim50,ddpm1000")
    return kind, int(text[len(kind):])


def run_study(model, spec, study, n, net) -> list[dict]:
    """FID and wall time of each sampler on one model, all at N = n against n reference images."""
    out = []
    for kind, steps in study:
        t0 = time.perf_counter()
        samples = generate(model, spec, n, sampler=kind, steps=steps, seed=0, progress=False)
        seconds = time.perf_counter() - t0
        ev = evaluate(samples, spec.dataset, n=n, net=net, metrics=("fid", "kid"))
        print(f"  {kind} {steps} steps: {seconds:.1f} s; {ev['FID'].describe()}", flush=True)
        out.append({"sampler": kind, "steps": steps, "seconds": seconds, "FID": ev["FID"].value,
                    "KID": ev["KID"].value, "KID_std": ev["KID"].std, "describe": ev["FID"].describe()})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="mnist", choices=("mnist", "fashion_mnist"))
    ap.add_argument("--seconds", type=float, default=300.0, help="training wall-clock budget per model")
    ap.add_argument("--n", type=int, default=2000, help="samples scored, and real reference images")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--sampling-steps", type=int, default=50)
    ap.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance of the conditional model")
    ap.add_argument("--min-snr-gamma", type=float, default=None)
    ap.add_argument("--prediction", default="epsilon", choices=("epsilon", "v", "x0"))
    ap.add_argument("--models", default="genlab,genlab_cond,diffusers")
    ap.add_argument("--study", default=None, help="steps vs quality on the genlab model, e.g. ddim10,ddim20,ddim50,ddim100,ddpm1000 "
                    "(default: that list for mnist, none for fashion_mnist; 'none' to skip)")
    ap.add_argument("--study-n", type=int, default=500, help="samples per sampler in the steps study")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 15 s budgets, N = 300, nothing saved")
    ap.add_argument("--tag", default=None)
    args = ap.parse_args()
    if args.study is None:
        args.study = "ddim10,ddim20,ddim50,ddim100,ddpm1000" if args.dataset == "mnist" else "none"
    study = [] if args.study == "none" else [parse_sampler(s) for s in args.study.split(",")]
    if args.quick:
        args.seconds, args.n, args.study_n, args.sampling_steps = 15.0, 300, 200, min(args.sampling_steps, 10)
        study = [(k, min(v, 20)) for k, v in study]
    tag = args.tag or f"{args.dataset}_5min"
    title = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}[args.dataset]
    info = header(f'"{title} in 5 minutes" on this CPU')
    net = feature_network_or_exit(args.dataset, title)
    train_x, train_y = generator_training_set(net, args.n)
    print(f"data: {len(train_x)} training images ({net.trained_on} + held-out images outside the reference); "
          f"reference: {args.n} real {net.reference} images; features: {net.describe()}", flush=True)  # fmt: skip

    rows: dict[str, dict] = {}
    steps_study: list[dict] = []
    floor_idx = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(1))[: args.n]
    print(f"floor: {args.n} real training images", flush=True)
    rows["floor"] = {"label": f"{args.n} real training images (the floor)",
                     **scored(train_x[floor_idx], args.dataset, args.n, train_y[floor_idx], net)}

    shape = tuple(train_x.shape[1:])
    options = TrainOptions(batch_size=args.batch, lr=args.lr, min_snr_gamma=args.min_snr_gamma)
    per_class = args.n // 10
    RESULTS.mkdir(exist_ok=True)
    for name in args.models.split(","):
        conditional = name == "genlab_cond"
        spec = DiffusionSpec(dataset=args.dataset, shape=shape, num_classes=10 if conditional else 0, prediction=args.prediction)
        if name in ("genlab", "genlab_cond"):
            make_model = lambda spec=spec: build_model(spec)  # noqa: E731
            label = "genlab U-Net, class-conditional" if conditional else "genlab U-Net"
        elif name == "diffusers":
            spec = DiffusionSpec(dataset=args.dataset, shape=shape)  # the peer: ε, linear β, T = 1000
            from diffusers import UNet2DModel

            make_model = lambda: DiffusersEps(UNet2DModel(**diffusers_kwargs("0.9M", shape[-1])))  # noqa: E731
            label = "diffusers UNet2DModel (the peer)"
        else:
            raise SystemExit(f"unknown model {name!r}; use genlab, genlab_cond, diffusers")
        print(f"{label}: training for ≈{args.seconds:.0f} s", flush=True)
        data = (train_x, train_y) if conditional else (train_x,)
        model, _, stats = train_for(make_model, spec, data, options if name != "diffusers" else TrainOptions(batch_size=args.batch, lr=args.lr),
                                 args.seconds, progress=not args.quick)  # fmt: skip
        labels = torch.arange(10).repeat_interleave(per_class) if conditional else None
        n = per_class * 10 if conditional else args.n
        t0 = time.perf_counter()
        samples = generate(model, spec, n, steps=args.sampling_steps, labels=labels,
                           guidance=args.guidance if conditional else 1.0, seed=0, progress=not args.quick)
        stats["sample_seconds"] = time.perf_counter() - t0
        print(f"  trained {stats['steps']} steps in {stats['train_seconds']:.0f} s ({stats['train_images_per_s']:.0f} images/s, "
              f"{stats['params'] / 1e6:.2f} M parameters); sampled {n} in {stats['sample_seconds']:.0f} s", flush=True)  # fmt: skip
        grid = RESULTS / f"{tag}_{name}.png"
        show = samples.reshape(10, per_class, *shape)[:, :10].reshape(-1, *shape) if conditional else samples[:100]
        if not args.quick:
            save_grid(show, grid, nrow=10, scale=2)
        rows[name] = {"label": label, **stats, **scored(samples, args.dataset, n, labels, net),
                      "grid": str(grid.relative_to(RESULTS.parent.parent))}
        if name == "genlab" and study:
            steps_study = run_study(model, spec, study, args.study_n, net)

    floor = rows["floor"]["FID"]["value"]
    print(f"\n{'':44s} {'FID':>8s} {'×floor':>7s} {'KID':>9s} {'prec':>5s} {'rec':>5s}")
    for r in rows.values():
        print(f"{r['label']:44s} {r['FID']['value']:8.2f} {r['FID']['value'] / floor:7.2f} {r['KID']['value']:9.4f} "
              f"{r['precision']['value']:5.2f} {r['recall']['value']:5.2f}")
    for r in steps_study:
        print(f"{r['sampler']:>10s} {r['steps']:5d} steps: FID {r['FID']:8.2f} (N={args.study_n}), {r['seconds']:7.1f} s")
    if args.quick:
        print("quick run: nothing saved")
        return
    save(tag, {
        **info, "dataset": args.dataset, "n": args.n, "reference": f"{args.n} real {net.reference} images",
        "feature_net": net.describe(), "train_images": len(train_x), "seconds_budget": args.seconds,
        "batch": args.batch, "lr": args.lr, "sampling": f"DDIM {args.sampling_steps} steps (trailing), η = 0",
        "guidance": args.guidance, "min_snr_gamma": args.min_snr_gamma, "prediction": args.prediction, "rows": rows,
        "study_n": args.study_n, "steps_study": steps_study,
    })  # fmt: skip


if __name__ == "__main__":
    main()
