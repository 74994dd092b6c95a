"""Three families on MNIST at the same CPU budget: four GANs, genlab's diffusion model and a VAE,
scored with one protocol (FID, KID, precision/recall, IS on genlab's MNIST feature network).

    GENLAB_DATA=../shared/data/mnist python benchmarks/families_mnist.py [--cpu-seconds 300] [--n 2000]
    python benchmarks/families_mnist.py --quick        # 20 s budgets, N = 300, nothing saved

Protocol (that of mnist_5min.py): reference = N real held-out images (offline: the feature network
trains on MNIST test half A, the reference comes from half B); every model trains on
``generator_training_set`` (every real image except the reference); all rows at the same N.

Budget: "5 CPU minutes" — each model trains for ``--cpu-seconds`` (300) of this process's **CPU
time** on ``--threads`` (1) torch threads, so other work on the machine does not shrink any model's
share (with more threads, CPU time also counts OpenMP's spin-waiting when the CPU is shared).
Steps come from a calibration of CPU seconds per step (after a warm-up run, two short runs of 10
and 50 steps, whose difference removes start-up costs), less a 15 % margin. Wall times are reported too.
Sampling is outside the budget; its time per image is reported (GANs: one generator pass; the
diffusion model: DDIM, 50 steps; the VAE: one decoder pass).

Rows:
- floor: N real training images.
- dcgan, wgan-gp, sngan, stylegan: ``genlab train --model …`` recipes (genlab.gan_pipeline), EMA
  generator (decay 0.999) sampled.
- diffusion: the course default (``genlab train --dataset mnist``), DDIM 50 steps.
- VAE: genlab.nn.vae conv VAE (latent 16, Bernoulli decoder on the grey levels), AdamW 1e-3;
  samples are decoder means E[x|z] at z ~ N(0, I) (the blur of a VAE is its mean, not noise).
- latent (``--models diffusion,latent --tag latent_mnist``: latent vs pixel diffusion at equal CPU
  time): ``genlab train --latent`` — as many autoencoder steps as U-Net steps on the 4×8×8 latents,
  both inside the one budget; DDIM 50 steps, then the decoder.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, feature_network_or_exit, header, save  # noqa: E402
from mnist_5min import scored, steps_for  # noqa: E402

from genlab.gan_pipeline import GAN_MODELS, GANSpec, GANTrainOptions, gan_generate, train_gan  # noqa: E402
from genlab.metrics import generator_training_set  # noqa: E402
from genlab.nn import count_parameters  # noqa: E402
from genlab.nn.vae import VAE, VAEConfig, vae_loss  # noqa: E402
from genlab.pipeline import DiffusionSpec, TrainOptions, build_model, generate, make_loss, train_config  # noqa: E402
from genlab.train import TrainConfig, fit  # noqa: E402
from genlab.viz import save_grid  # noqa: E402


class Timed:
    """CPU and wall seconds of a block."""

    def __enter__(self):
        self.cpu0, self.wall0 = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.cpu, self.wall = time.process_time() - self.cpu0, time.perf_counter() - self.wall0


def gan_trainer(model: str, images: torch.Tensor):
    spec = GANSpec(dataset="mnist", shape=tuple(images.shape[1:]), model=model, width=16 if model == "stylegan" else 32)

    def run(steps: int):
        state = train_gan(spec, images, GANTrainOptions(steps=steps, ckpt_every=0), progress=False)
        g = state.emas["generator"].shadow
        return g, lambda n: gan_generate(g, n, seed=0), state.history

    return run


def diffusion_trainer(images: torch.Tensor):
    spec, options = DiffusionSpec(dataset="mnist", shape=tuple(images.shape[1:])), TrainOptions()

    def run(steps: int):
        torch.manual_seed(options.seed)
        result = fit(build_model(spec), make_loss(spec, options), (images,), train_config(dataclasses.replace(options, steps=steps, ckpt_every=0)),
                     progress=False)  # fmt: skip
        model = result.ema.eval()
        return model, lambda n: generate(model, spec, n, sampler="ddim", steps=50, seed=0), {"loss": result.losses}

    return run


def vae_trainer(images: torch.Tensor):
    def run(steps: int):
        torch.manual_seed(0)
        model = VAE(VAEConfig(kind="conv", latent_dim=16, likelihood="bernoulli"))
        result = fit(model, vae_loss, (images,), TrainConfig(steps=steps, batch_size=128, lr=1e-3, warmup_steps=min(100, steps // 10), seed=0),
                     progress=False)  # fmt: skip
        model = result.model.eval()
        return model, lambda n: model.sample(n, generator=torch.Generator().manual_seed(0)), {"loss": result.losses}

    return run


def latent_trainer(images: torch.Tensor):
    """Latent diffusion (``genlab train --latent``): ``steps`` autoencoder steps, then ``steps`` U-Net steps on the latents."""
    from genlab.latent_pipeline import LatentDiffusionModel, encode_dataset, train_autoencoder

    def run(steps: int):
        ae = train_autoencoder(images, dataset="mnist", steps=steps, progress=False).model.eval()
        latents, scale = encode_dataset(ae, images)
        spec = DiffusionSpec(dataset="mnist", shape=tuple(latents.shape[1:]), clip=None,
                             latent={"scale_factor": scale, "image_shape": list(images.shape[1:])})  # fmt: skip
        options = TrainOptions()
        torch.manual_seed(options.seed)
        result = fit(build_model(spec), make_loss(spec, options), (latents,), train_config(dataclasses.replace(options, steps=steps, ckpt_every=0)),
                     progress=False)  # fmt: skip
        model = LatentDiffusionModel(result.ema.eval(), ae, scale)
        return model, lambda n: generate(model, spec, n, sampler="ddim", steps=50, seed=0), {"loss": result.losses}

    return run


def budgeted(run, cpu_seconds: float) -> tuple[int, dict]:
    """Steps that fit ``cpu_seconds`` of CPU time: a warm-up run (one-off costs: kernels, allocator),
    then two short runs (10 and 50 steps) whose difference is the cost of 40 steps."""
    run(3)
    with Timed() as short:
        run(10)
    with Timed() as long:
        run(50)
    return steps_for(cpu_seconds, 40 / max(long.cpu - short.cpu, 1e-3)), {"calibration_cpu_seconds": [short.cpu, long.cpu]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-seconds", type=float, default=300.0, help="budget per model: seconds of CPU time, all threads together")
    ap.add_argument("--n", type=int, default=2000, help="samples scored, and real reference images")
    ap.add_argument("--models", default="dcgan,wgan-gp,sngan,stylegan,diffusion,vae")
    ap.add_argument("--tag", default="families_mnist", help="results name (benchmarks/results/TAG.json)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: CPU time then measures work alone)")
    ap.add_argument("--quick", action="store_true", help="20 s budgets, N = 300, nothing saved")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.cpu_seconds, args.n = 20.0, 300
    info = header("Three families on MNIST at the same CPU budget")
    threads = torch.get_num_threads()
    cpu_budget = args.cpu_seconds
    net = feature_network_or_exit("mnist", "MNIST")
    train_x, train_y = generator_training_set(net, args.n)
    print(f"data: {len(train_x)} training images; reference: {args.n} real {net.reference} images; features: {net.describe()}; "
          f"budget {cpu_budget:.0f} CPU seconds per model ({threads} torch threads)", flush=True)  # fmt: skip

    floor_idx = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(1))[: args.n]
    rows = {"floor": {"label": f"{args.n} real training images (the floor)", **scored(train_x[floor_idx], "mnist", args.n, None, net)}}
    trainers = {**{m: (f"GAN: {m}", lambda m=m: gan_trainer(m, train_x)) for m in GAN_MODELS},
                "diffusion": ("diffusion: genlab U-Net, DDIM 50", lambda: diffusion_trainer(train_x)),
                "vae": ("VAE: conv, latent 16", lambda: vae_trainer(train_x)),
                "latent": ("latent diffusion: AE 4×8×8 + U-Net", lambda: latent_trainer(train_x))}  # fmt: skip
    for name in args.models.split(","):
        if name not in trainers:
            raise SystemExit(f"unknown model {name!r}; use {', '.join(trainers)}")
        label, make = trainers[name]
        run = make()
        load = round(os.getloadavg()[0], 2)
        steps, cal = budgeted(run, cpu_budget)
        print(f"{label}: {steps} steps for {cpu_budget:.0f} CPU s (load average {load})", flush=True)
        with Timed() as t:
            model, sample, history = run(steps)
        with Timed() as s:
            samples = sample(args.n)
        stats = {"steps": steps, "train_cpu_seconds": t.cpu, "train_wall_seconds": t.wall, "params": count_parameters(model),
                 "sample_wall_seconds": s.wall, "sample_ms_per_image": 1000 * s.wall / args.n, "load_average_at_start": load, **cal}  # fmt: skip
        print(f"  trained in {t.cpu:.0f} CPU s / {t.wall:.0f} s wall; {stats['params'] / 1e6:.2f} M parameters; "
              f"sampling {stats['sample_ms_per_image']:.2f} ms per image", flush=True)
        grid = RESULTS / f"{args.tag}_{name}.png"
        if not args.quick:
            save_grid(samples[:100], grid, nrow=10, scale=2)
        rows[name] = {"label": label, **stats, **scored(samples, "mnist", args.n, None, net), "grid": str(grid.relative_to(RESULTS.parent.parent))}

    floor = rows["floor"]["FID"]["value"]
    print(f"\n{'':36s} {'FID':>8s} {'×floor':>7s} {'KID':>9s} {'prec':>5s} {'rec':>5s} {'ms/img':>7s} {'steps':>6s}")
    for r in rows.values():
        print(f"{r['label']:36s} {r['FID']['value']:8.2f} {r['FID']['value'] / floor:7.2f} {r['KID']['value']:9.4f} "
              f"{r['precision']['value']:5.2f} {r['recall']['value']:5.2f} {r.get('sample_ms_per_image', 0):7.2f} {r.get('steps', 0):6d}")
    if args.quick:
        print("quick run: nothing saved")
        return
    save(args.tag, {**info, "command": "python benchmarks/families_mnist.py " + " ".join(sys.argv[1:]), "dataset": "mnist", "n": args.n, "reference": f"{args.n} real {net.reference} images",
                            "feature_net": net.describe(), "train_images": len(train_x), "cpu_seconds_budget": cpu_budget,
                            "rows": rows})  # fmt: skip


if __name__ == "__main__":
    main()
