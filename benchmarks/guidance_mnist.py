"""Guidance on MNIST: the classifier-free guidance sweep and classifier guidance, measured.

    GENLAB_DATA=../shared/data/mnist python benchmarks/guidance_mnist.py [--seconds 300] [--n 1000]
    python benchmarks/guidance_mnist.py --quick        # a smoke run: 15 s budget, N = 200, nothing saved

One class-conditional model (genlab's U-Net, condition dropout 0.1, trained for --seconds with the
protocol of mnist_5min.py, or for exactly --train-steps) and one noise-aware classifier p_φ(y | x_t, t) trained on x_t of the same
process (--classifier-steps). Then, all at the same N (N/10 per class) against N real held-out
images with genlab's MNIST features, DDIM --sampling-steps:

- classifier-free guidance, w ∈ --cfg (0 = the unconditional mode, 1 = plain conditional): FID, KID,
  conditional accuracy (the feature net's classifier agrees with the class asked for),
  precision/recall, sampling time;
- classifier guidance on the model's unconditional mode (null label), s ∈ --cg: the same figures;
  the best s by FID is reported as "classifier guidance at its best scale";
- the noise-aware classifier's accuracy at five noise levels on held-out images.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, header, save  # noqa: E402
from mnist_5min import train_for, train_steps  # noqa: E402

from genlab.diffusion import accuracy_by_time  # noqa: E402
from genlab.metrics import evaluate, feature_network, generator_training_set  # noqa: E402
from genlab.metrics.reference import reference_images  # noqa: E402
from genlab.pipeline import DiffusionSpec, TrainOptions, build_model, generate, train_noisy_classifier  # noqa: E402
from genlab.viz import save_grid  # noqa: E402

METRICS = ("fid", "kid", "precision_recall")


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def score(samples, labels, n, net) -> dict:
    ev = evaluate(samples, "mnist", n=n, labels=labels, net=net, metrics=METRICS)
    return {name: r.value for name, r in ev.results.items()} | {"KID_std": ev["KID"].std, "describe": ev["FID"].describe()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=300.0, help="training budget of the diffusion model")
    ap.add_argument("--train-steps", type=int, default=None,
                    help="train this many steps instead of calibrating --seconds (results then do not depend on the machine's load)")
    ap.add_argument("--classifier-steps", type=int, default=1500)
    ap.add_argument("--n", type=int, default=1000, help="samples per setting (N/10 per class), and real reference images")
    ap.add_argument("--sampling-steps", type=int, default=50)
    ap.add_argument("--cfg", type=floats, default=floats("0,1,2,3,5,8"), help="classifier-free guidance scales w")
    ap.add_argument("--cg", type=floats, default=floats("1,2,4,8"), help="classifier guidance scales s (unconditional mode)")
    ap.add_argument("--quick", action="store_true", help="15 s budget, 30 classifier steps, N = 200, nothing saved")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.classifier_steps, args.n, args.sampling_steps = 15.0, 30, 200, 10
    info = header("Guidance on MNIST: CFG sweep and classifier guidance")
    net = feature_network("mnist", progress=False)
    train_x, train_y = generator_training_set(net, args.n)
    print(f"data: {len(train_x)} training images; reference: {args.n} real {net.reference} images; features: {net.describe()}", flush=True)
    spec = DiffusionSpec(dataset="mnist", shape=(1, 28, 28), num_classes=10)
    options = TrainOptions()
    make = lambda: build_model(spec)  # noqa: E731
    if args.train_steps:
        print(f"class-conditional genlab U-Net: training for {args.train_steps} steps", flush=True)
        model, _, stats = train_steps(make, spec, (train_x, train_y), options, args.train_steps, progress=not args.quick)
    else:
        print(f"class-conditional genlab U-Net: training for ≈{args.seconds:.0f} s", flush=True)
        model, _, stats = train_for(make, spec, (train_x, train_y), options, args.seconds, progress=not args.quick)
    print(f"  {stats['steps']} steps in {stats['train_seconds']:.0f} s", flush=True)

    print(f"noise-aware classifier: {args.classifier_steps} steps", flush=True)
    t0 = time.perf_counter()
    clf = train_noisy_classifier(spec, (train_x, train_y), steps=args.classifier_steps, progress=not args.quick).model.eval()
    clf_seconds = time.perf_counter() - t0
    process = spec.make_process()
    held_x, held_y = reference_images(net, n=args.n, with_labels=True)  # never seen in training
    times = [0, 250, 500, 750, 999]
    acc_t = accuracy_by_time(clf, process, held_x, held_y, times)
    print("  accuracy by t: " + ", ".join(f"t={t}: {a:.1%}" for t, a in zip(times, acc_t)) + f" ({clf_seconds:.0f} s)", flush=True)

    per_class = args.n // 10
    n = per_class * 10
    labels = torch.arange(10).repeat_interleave(per_class)
    rows: dict[str, dict] = {}
    RESULTS.mkdir(exist_ok=True)

    def run(name: str, draw) -> None:
        t0 = time.perf_counter()
        samples = draw()
        seconds = time.perf_counter() - t0
        rows[name] = {"sample_seconds": seconds, **score(samples, labels, n, net)}
        r = rows[name]
        print(f"  {name:>8s}: FID {r['FID']:7.2f}  acc {r['conditional accuracy']:.3f}  prec {r['precision']:.2f}  "
              f"rec {r['recall']:.2f}  ({seconds:.0f} s)", flush=True)  # fmt: skip
        if not args.quick:
            show = samples.reshape(10, per_class, 1, 28, 28)[:, :10].reshape(-1, 1, 28, 28)
            save_grid(show, RESULTS / f"guidance_mnist_{name}.png", nrow=10, scale=2)

    print("classifier-free guidance:", flush=True)
    for w in args.cfg:
        run(f"cfg_w{w:g}", lambda w=w: generate(model, spec, n, steps=args.sampling_steps, labels=labels, guidance=w, seed=0))
    print("classifier guidance (unconditional mode):", flush=True)
    for s in args.cg:  # CFG w = 0 is the unconditional mode (one pass with the null label); the classifier steers it
        run(f"cg_s{s:g}", lambda s=s: generate(model, spec, n, steps=args.sampling_steps, labels=labels, guidance=0.0, seed=0,
                                               classifier=clf, classifier_scale=s))  # fmt: skip
    cg = [k for k in rows if k.startswith("cg_")]
    best = min(cg, key=lambda k: rows[k]["FID"]) if cg else None
    print(f"\n{'setting':>10s} {'FID':>8s} {'KID':>9s} {'acc':>6s} {'prec':>5s} {'rec':>5s} {'s/img':>7s}  (N={n}, {net.describe()})")
    for k, r in rows.items():
        print(f"{k:>10s} {r['FID']:8.2f} {r['KID']:9.4f} {r['conditional accuracy']:6.3f} {r['precision']:5.2f} {r['recall']:5.2f} "
              f"{r['sample_seconds'] / n:7.4f}" + ("  ← best classifier scale" if k == best else ""))  # fmt: skip
    if args.quick:
        print("quick run: nothing saved")
        return
    save("guidance_mnist", {
        **info, "n": n, "reference": f"{args.n} real {net.reference} images", "feature_net": net.describe(),
        "train_images": len(train_x), "seconds_budget": None if args.train_steps else args.seconds, "model": stats,
        "sampling": f"DDIM {args.sampling_steps} steps (trailing), η = 0",
        "classifier": {"steps": args.classifier_steps, "seconds": clf_seconds, "accuracy_by_t": dict(zip(map(str, times), acc_t))},
        "rows": rows, "best_classifier_scale": best,
    })  # fmt: skip


if __name__ == "__main__":
    main()
