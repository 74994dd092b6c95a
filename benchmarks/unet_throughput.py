"""Training and sampling throughput of genlab's default U-Net vs diffusers' UNet2DModel, same run.

    python benchmarks/unet_throughput.py [--batch 128] [--iters 20] [--sample-batch 100]

Reports images/s, model FLOPs per image (forward, counted by torch's FlopCounterMode; a training
step is ≈ 3× forward), achieved GFLOP/s, and this CPU's fp32 matmul GFLOP/s measured in the same
run as the yardstick. diffusers' model is the ≈1.1 M-parameter UNet2DModel at 32×32 (MNIST padded,
as its three-level layout needs); genlab's runs at MNIST's native 28×28. Both are sampled with
genlab's DDIM loop (50 steps), so only the networks differ.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import header, save  # noqa: E402

from genlab.diffusion import ddim_sample, make_schedule, timesteps_grid  # noqa: E402
from genlab.nn import UNet, count_parameters  # noqa: E402
from genlab.pipeline import default_unet_config  # noqa: E402


class DiffusersEps(torch.nn.Module):
    """diffusers' UNet2DModel behind genlab's model(x, t, y) interface."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x, t, y=None):
        return self.unet(x, t).sample


def diffusers_unet():
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    return DiffusersEps(UNet2DModel(
        sample_size=32, in_channels=1, out_channels=1, block_out_channels=(32, 64, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"), norm_num_groups=8,
    ))  # fmt: skip


def matmul_gflops(n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def forward_flops(model, size: int) -> int:
    x, t = torch.randn(1, 1, size, size), torch.zeros(1, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        model(x, t)
    return counter.get_total_flops()


def train_throughput(model, size: int, batch: int, iters: int) -> float:
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, size, size, generator=g)
    target = torch.randn(batch, 1, size, size, generator=g)
    t = torch.randint(0, 1000, (batch,), generator=g)
    times = []
    for i in range(iters + 3):
        t0 = time.perf_counter()
        loss = (model(x, t) - target).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 3:  # warm-up: oneDNN builds its kernels on the first calls
            times.append(time.perf_counter() - t0)
    times.sort()
    return batch / times[len(times) // 2]


def sample_throughput(model, size: int, batch: int, steps: int = 50) -> float:
    model.eval()
    schedule = make_schedule("linear", 1000)
    grid = timesteps_grid(1000, steps, "trailing")
    ddim_sample(model, (batch, 1, size, size), schedule, grid[:2], generator=torch.Generator().manual_seed(0))  # warm-up
    t0 = time.perf_counter()
    ddim_sample(model, (batch, 1, size, size), schedule, grid, generator=torch.Generator().manual_seed(0))
    return batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--sample-batch", type=int, default=64)
    args = ap.parse_args()
    info = header("U-Net throughput on this machine (fp32)")
    peak = matmul_gflops()
    print(f"fp32 matmul (2048²): {peak:.0f} GFLOP/s")

    torch.manual_seed(0)
    models = {
        "genlab UNet (default, 28×28)": (UNet(default_unet_config(28)), 28),
        # About diffusers' parameter count, spent where feature maps are small (24·(1, 2, 4) channels).
        "genlab UNet (≈1.2 M, 28×28)": (UNet(default_unet_config(28, base_channels=24, channel_mults=(1, 2, 4), groups=4)), 28),
        "diffusers UNet2DModel (32×32)": (diffusers_unet(), 32),
    }
    rows = []
    for name, (model, size) in models.items():
        flops = forward_flops(model, size)
        train_ips = train_throughput(model, size, args.batch, args.iters)
        sample_ips = sample_throughput(model, size, args.sample_batch)
        row = {
            "model": name, "params": count_parameters(model), "image_size": size,
            "forward_gflop_per_image": flops / 1e9,
            "train_images_per_s": train_ips, "train_gflops": 3 * flops * train_ips / 1e9,
            "sample_images_per_s_ddim50": sample_ips, "sample_gflops": 50 * flops * sample_ips / 1e9,
            "seconds_per_1000_samples": 1000 / sample_ips,
        }  # fmt: skip
        rows.append(row)
        print(f"{name}: {row['params'] / 1e6:.2f} M params, {row['forward_gflop_per_image']:.3f} GFLOP/img fwd | "
              f"train {train_ips:.0f} img/s ({row['train_gflops']:.0f} GFLOP/s) | "
              f"sample (DDIM 50) {sample_ips:.1f} img/s ({row['sample_gflops']:.0f} GFLOP/s), 1000 images in {row['seconds_per_1000_samples']:.0f} s",
              flush=True)  # fmt: skip
    ref = rows[-1]
    for row in rows[:-1]:
        row["train_speedup_vs_diffusers"] = row["train_images_per_s"] / ref["train_images_per_s"]
        row["sample_speedup_vs_diffusers"] = row["sample_images_per_s_ddim50"] / ref["sample_images_per_s_ddim50"]
        print(f"{row['model']} vs diffusers: training ×{row['train_speedup_vs_diffusers']:.2f}, sampling ×{row['sample_speedup_vs_diffusers']:.2f}")
    save("unet_throughput", {**info, "matmul_gflops": peak, "batch": args.batch, "sample_batch": args.sample_batch, "rows": rows})


if __name__ == "__main__":
    main()
