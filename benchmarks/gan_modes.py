"""Mode collapse on 2-D mixtures: the plain GAN, WGAN-GP and SN-GAN on the ring of 8 and the 5×5 grid.

    python benchmarks/gan_modes.py [--steps 3000] [--seeds 0 1 2] [--n 2500]

Same generator and discriminator (MLPs, 3 hidden layers of 128) for every method, the same number
of generator updates and batch size; each method keeps its paper's loss and optimiser settings:

- plain GAN: non-saturating loss, Adam(1e-3, β = (0.5, 0.999)), 1 D update per G update
- WGAN-GP: Wasserstein loss + 10 · gradient penalty, Adam(1e-4, β = (0, 0.9)), 5 critic updates
- SN-GAN: hinge loss, spectral norm on every layer of D, Adam(1e-3, β = (0.5, 0.999)), 1 D update

After training, ``--n`` samples of the raw generator are scored with
:func:`genlab.metrics.mode_coverage` (a mode is covered when it holds ≥ 10 % of its fair share of
samples within 3σ of it). Results: benchmarks/results/gan_modes.json and gan_modes.png.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from common import RESULTS, header, save
from genlab.data import toy2d, toy2d_modes
from genlab.metrics import mode_coverage
from genlab.nn.gan import AdversarialStep, MLPDiscriminator, MLPGenerator, add_spectral_norm, gan_state
from genlab.train.engine import TrainConfig, train

METHODS = {
    "plain GAN": dict(loss="non_saturating", n_critic=1, gp_weight=0.0, lr=1e-3, betas=(0.5, 0.999), sn=False),
    "WGAN-GP": dict(loss="wasserstein", n_critic=5, gp_weight=10.0, lr=1e-4, betas=(0.0, 0.9), sn=False),
    "SN-GAN": dict(loss="hinge", n_critic=1, gp_weight=0.0, lr=1e-3, betas=(0.5, 0.999), sn=True),
}
DATA = {"ring": "gaussian_mixture", "grid": "grid"}
HIDDEN = (128, 128, 128)
LATENT = 8


def run(method: str, data: str, seed: int, steps: int, batch: int, n: int) -> dict:
    m = METHODS[method]
    points = torch.from_numpy(toy2d(DATA[data], 50_000, seed=1000 + seed))
    torch.manual_seed(seed)
    g, d = MLPGenerator(LATENT, 2, HIDDEN), MLPDiscriminator(2, HIDDEN)
    if m["sn"]:
        add_spectral_norm(d)
    state = gan_state(g, d, lr=m["lr"], betas=m["betas"], ema_decay=None)
    config = TrainConfig(steps=steps, batch_size=batch * m["n_critic"], warmup_steps=0, lr_min_ratio=1.0, grad_clip=None, seed=seed)
    t0 = time.perf_counter()
    train(state, AdversarialStep(m["loss"], m["n_critic"], m["gp_weight"]), (points,), config, progress=False)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        samples = g.eval()(g.sample_latent(n, torch.Generator().manual_seed(10_000 + seed))).numpy()
    means, std = toy2d_modes(DATA[data])
    cov = mode_coverage(samples, means, std)
    return {"method": method, "data": data, "seed": seed, "train_seconds": seconds, **cov.to_dict(), "samples": samples}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000, help="generator updates per run")
    ap.add_argument("--batch", type=int, default=256, help="real points per critic update")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--n", type=int, default=2500, help="samples scored per run")
    args = ap.parse_args()
    info = header("GAN mode collapse on the ring of 8 and the 5×5 grid")
    rows, scatter = [], {}
    for data in DATA:
        for method in METHODS:
            for seed in args.seeds:
                r = run(method, data, seed, args.steps, args.batch, args.n)
                if seed == args.seeds[0]:
                    scatter[(data, method)] = r["samples"]
                del r["samples"]
                rows.append(r)
                print(f"{data:4s} | {method:9s} | seed {seed} | modes {r['modes_covered']:2d}/{r['num_modes']} | "
                      f"high quality {r['high_quality']:.3f} | balance TV {r['balance_tv']:.3f} | {r['train_seconds']:.0f} s", flush=True)
    summary = {}
    print(f"\n{'data':4s} | {'method':9s} | modes covered (mean, min–max) | high quality (mean) | balance TV (mean)")
    for data in DATA:
        for method in METHODS:
            rs = [r for r in rows if r["data"] == data and r["method"] == method]
            modes = [r["modes_covered"] for r in rs]
            s = {"modes_mean": float(np.mean(modes)), "modes_min": min(modes), "modes_max": max(modes), "num_modes": rs[0]["num_modes"],
                 "high_quality_mean": float(np.mean([r["high_quality"] for r in rs])),
                 "balance_tv_mean": float(np.mean([r["balance_tv"] for r in rs])),
                 "train_seconds_mean": float(np.mean([r["train_seconds"] for r in rs]))}  # fmt: skip
            summary[f"{data}/{method}"] = s
            print(f"{data:4s} | {method:9s} | {s['modes_mean']:5.1f} ({s['modes_min']}–{s['modes_max']}) of {s['num_modes']} | "
                  f"{s['high_quality_mean']:.3f} | {s['balance_tv_mean']:.3f}")
    plot(scatter, args.seeds[0])
    save("gan_modes", {**info, "settings": {"steps": args.steps, "batch": args.batch, "seeds": args.seeds, "n": args.n, "hidden": HIDDEN,
                                             "latent_dim": LATENT, "methods": METHODS, "coverage": "≥ 10 % of n/K samples within 3σ"},
                       "runs": rows, "summary": summary})  # fmt: skip


def plot(scatter: dict, seed: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(DATA), len(METHODS) + 1, figsize=(3.2 * (len(METHODS) + 1), 3.2 * len(DATA)))
    for i, data in enumerate(DATA):
        means, _ = toy2d_modes(DATA[data])
        real = toy2d(DATA[data], 2500, seed=0)
        for j, (title, pts) in enumerate([("data", real)] + [(m, scatter[(data, m)]) for m in METHODS]):
            ax = axes[i, j]
            ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.4)
            ax.scatter(means[:, 0], means[:, 1], s=12, c="red", marker="x")
            ax.set(xlim=(-2.2, 2.2), ylim=(-2.2, 2.2), aspect="equal", title=f"{data}: {title}" + ("" if j == 0 else f" (seed {seed})"))
    fig.tight_layout()
    fig.savefig(RESULTS / "gan_modes.png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
