"""VAE on MNIST: held-out ELBO (nats and bits/dim), training time and images/s on this machine.

Trains the VAE of notebook 38 (genlab.nn.vae.VAE, Bernoulli decoder) for a fixed number of steps,
once per configuration (kind, latent_dim), through genlab.train.fit, then evaluates on held-out images.

Data protocol (stated in the output): MNIST from $GENLAB_DATA. By default only the 10 000-image
*test* split is used (it is all the offline machine has): train on its first 9 000 images, evaluate
on its last 1 000. Images are statically binarised (pixel > 0.5 → 1), so the Bernoulli likelihood is
a true probability and the ELBO is a bound on log p(x) in nats.

Conventions: ELBO = E_q[log p(x|z)] − KL(q(z|x) ‖ p(z)) per image, in nats, averaged over the
held-out images (and over ``--elbo-draws`` draws of z). bits/dim = −ELBO / (784 · ln 2).
Also reported: an importance-weighted estimate of log p(x) with K samples (Burda et al. 2016),
a tighter bound, same conventions.

    GENLAB_DATA=/path/to/mnist python benchmarks/vae_mnist.py [--steps 1200] [--runs mlp:16,mlp:2,conv:16] [--threads N]

Results: a table on stdout and benchmarks/results/vae_mnist.json (with date and machine).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info  # noqa: E402

from genlab.data import load_mnist
from genlab.nn.vae import VAE, VAEConfig, elbo_terms, importance_log_likelihood, vae_loss
from genlab.train import TrainConfig, fit

RESULTS = Path(__file__).resolve().parent / "results" / "vae_mnist.json"
N_TRAIN, N_EVAL = 9_000, 1_000
D = 28 * 28


def machine() -> dict:
    load = list(os.getloadavg()) if hasattr(os, "getloadavg") else None  # other work on the machine
    return {**machine_info(), "load_average_1_5_15min": load}


def bits_per_dim(nats: float) -> float:
    """−(log-likelihood in nats) / (D ln 2): nats per image → bits per pixel."""
    return -nats / (D * math.log(2))


@torch.no_grad()
def evaluate(model: VAE, x: torch.Tensor, draws: int, iw_samples: int, device) -> dict:
    model.eval()
    g = torch.Generator().manual_seed(1234)
    elbo = recon = kl = 0.0
    for _ in range(draws):
        for i in range(0, len(x), 500):
            t = elbo_terms(model, x[i : i + 500].to(device), generator=g)
            w = len(x[i : i + 500]) / len(x) / draws
            elbo, recon, kl = elbo + w * t["elbo"].item(), recon + w * t["recon"].item(), kl + w * t["kl"].item()
    iw = torch.cat([
        importance_log_likelihood(model, x[i : i + 100].to(device), num_samples=iw_samples, generator=g).cpu()
        for i in range(0, len(x), 100)
    ]).mean().item()
    return {"elbo_nats": elbo, "recon_nats": recon, "kl_nats": kl, "bits_per_dim": bits_per_dim(elbo),
            f"iw{iw_samples}_log_px_nats": iw, f"iw{iw_samples}_bits_per_dim": bits_per_dim(iw)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="mlp:16,mlp:2,conv:16", help="comma-separated kind:latent_dim")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--elbo-draws", type=int, default=5)
    ap.add_argument("--iw-samples", type=int, default=100)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    images, _ = load_mnist(split="test")
    binary = torch.where(images > 0, 1.0, -1.0)  # static binarisation at pixel 0.5 ([-1,1] scale: 0)
    x_train, x_eval = binary[:N_TRAIN], binary[N_TRAIN : N_TRAIN + N_EVAL]
    data_note = (f"MNIST test split (from $GENLAB_DATA): trained on images 0..{N_TRAIN - 1}, "
                 f"evaluated on images {N_TRAIN}..{N_TRAIN + N_EVAL - 1}; statically binarised at 0.5")
    info = machine()
    print(f"date: {info['date']} | machine: {info['machine']} | torch {info['torch']} ({info['torch_threads']} threads)")
    print(data_note)
    print(f"ELBO and log p(x) per image in nats; bits/dim = -nats / ({D} ln 2)\n")

    runs = []
    for spec in args.runs.split(","):
        kind, latent = spec.split(":")
        torch.manual_seed(0)  # weight initialisation
        model = VAE(VAEConfig(kind=kind, latent_dim=int(latent), likelihood="bernoulli"))
        config = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=100, seed=0, device=args.device)
        t0 = time.perf_counter()
        result = fit(model, vae_loss, (x_train,), config, progress=False)
        seconds = time.perf_counter() - t0
        device = next(result.model.parameters()).device
        metrics = evaluate(result.model, x_eval, args.elbo_draws, args.iw_samples, device)
        row = {
            "kind": kind, "latent_dim": int(latent), "hidden": list(model.config.hidden),
            "parameters": sum(p.numel() for p in model.parameters()),
            "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
            "train_seconds": seconds, "train_images_per_second": args.steps * args.batch_size / seconds,
            "final_train_loss_mean_last_100": sum(result.losses[-100:]) / len(result.losses[-100:]),
            **metrics,
        }
        runs.append(row)
        print(f"{kind:>4} z={latent:>2}  held-out ELBO {row['elbo_nats']:8.2f} nats ({row['bits_per_dim']:.4f} bits/dim)"
              f"  IW-{args.iw_samples} log p(x) {row[f'iw{args.iw_samples}_log_px_nats']:8.2f} nats"
              f"  recon {row['recon_nats']:6.2f}  KL {row['kl_nats']:5.2f}"
              f"  | train {seconds:6.1f} s, {row['train_images_per_second']:7.0f} img/s")

    report = {
        "benchmark": "vae_mnist",
        **info,
        "command": " ".join(sys.argv),
        "data": data_note,
        "conventions": {
            "elbo": "per image, nats: E_q[log p(x|z)] - KL(q(z|x)||p(z)), Bernoulli decoder on binarised pixels",
            "bits_per_dim": f"-nats / ({D} * ln 2)",
            "elbo_estimate": f"mean over {N_EVAL} held-out images x {args.elbo_draws} draws of z (one sample each)",
            "iw": f"importance-weighted log p(x) estimate with K={args.iw_samples} samples from q(z|x)",
        },
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
