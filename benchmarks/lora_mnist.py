"""LoRA vs full fine-tuning: adapting an MNIST diffusion model to a new style on a CPU.

    GENLAB_DATA=../shared/data/mnist python benchmarks/lora_mnist.py [--base-steps 800] [--tune-steps 300] [--n 500]
    python benchmarks/lora_mnist.py --quick        # tiny steps, N = 200, nothing saved

1. A base model: the course's unconditional U-Net, ``--base-steps`` on MNIST.
2. The new domain, "bold" digits: each image dilated by a 3×3 max-pool (strokes about two pixels
   thicker). ``--tune-images`` of them (from the training split) are the fine-tuning data; the
   reference for the target FID is the held-out reference images, dilated the same way.
3. From the same base: LoRA (genlab.lora, peft; rank ``--rank`` on the attention projections and
   residual convolutions, the rest frozen) and full fine-tuning, each ``--tune-steps`` steps at the
   same batch and learning rate.

Every FID: N samples (DDIM 50 steps, the same noise) vs N real held-out images of that domain, on
genlab's MNIST features. "original" = plain reference images, "bold" = the dilated ones. For LoRA
the adapted row is the merged model; with the adapter switched off (``lora_disabled``: unmerged,
the base weights restored) it is the base model again, which the last row checks. Also: trainable parameters, seconds per step, adapter size on disk.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, feature_network_or_exit, header, save  # noqa: E402

from genlab.data.captions import measure_attributes  # noqa: E402
from genlab.lora import add_lora, lora_disabled, merge_lora, save_lora, trainable_parameters  # noqa: E402
from genlab.metrics import frechet_distance_from_features, generator_training_set, reference_images  # noqa: E402
from genlab.pipeline import DiffusionSpec, TrainOptions, build_model, generate, make_loss, train_config  # noqa: E402
from genlab.train import fit  # noqa: E402
from genlab.viz import save_grid  # noqa: E402


def bold(images: torch.Tensor) -> torch.Tensor:
    """The target style: 3×3 max-pool dilation (ink is bright, so strokes grow by one pixel each side)."""
    return F.max_pool2d(images, 3, stride=1, padding=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-steps", type=int, default=800)
    ap.add_argument("--tune-steps", type=int, default=300)
    ap.add_argument("--tune-images", type=int, default=512)
    ap.add_argument("--rank", type=int, default=4)
    ap.add_argument("--tune-lr", type=float, default=1e-3)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    sampling_steps = 50
    if args.quick:
        args.base_steps, args.tune_steps, args.n, sampling_steps = 10, 5, 200, 5
    info = header("LoRA vs full fine-tuning on MNIST → bold digits")
    net = feature_network_or_exit("mnist", "MNIST")
    train_x, _ = generator_training_set(net, args.n)
    ref = reference_images(net, n=args.n)
    targets = {"original": net.features(ref), "bold": net.features(bold(ref))}  # reference features of each domain
    spec = DiffusionSpec(dataset="mnist", shape=tuple(train_x.shape[1:]))
    options = TrainOptions(steps=args.base_steps, ckpt_every=0)
    loss = make_loss(spec, options)

    def score(model, name: str) -> dict:
        t0 = time.perf_counter()
        samples = generate(model.eval(), spec, args.n, steps=sampling_steps, seed=0)
        out = {"sample_seconds": time.perf_counter() - t0}
        feats = net.features(samples)
        for domain, real in targets.items():
            out[f"FID_{domain}"] = frechet_distance_from_features(feats, real)
        out["thickness"] = float(np.nanmean(measure_attributes(samples)["thickness"]))
        if not args.quick:
            grid = RESULTS / f"lora_mnist_{name}.png"
            save_grid(samples[:64], grid, nrow=8, scale=2)
            out["grid"] = str(grid.relative_to(RESULTS.parent.parent))
        print(f"  {name}: FID original {out['FID_original']:.1f}, bold {out['FID_bold']:.1f} (N = {args.n}); mean thickness {out['thickness']:.2f}", flush=True)
        return out

    print(f"base model: {args.base_steps} steps on {len(train_x)} MNIST images", flush=True)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    base = fit(build_model(spec), loss, (train_x,), train_config(options), progress=not args.quick).ema.eval()
    base_s = time.perf_counter() - t0
    rows = {"real": {"label": "real held-out images (the bold FID: the gap between the two domains)", "FID_bold": frechet_distance_from_features(targets["original"], targets["bold"]),
                     "thickness": float(np.nanmean(measure_attributes(ref)["thickness"])), "thickness_bold": float(np.nanmean(measure_attributes(bold(ref))["thickness"]))},
            "base": {"label": "base model", "train_seconds": base_s, **score(base, "base")}}  # fmt: skip
    tune_x = bold(train_x[torch.randperm(len(train_x), generator=torch.Generator().manual_seed(2))[: args.tune_images]])
    tune = dataclasses.replace(options, steps=args.tune_steps, lr=args.tune_lr)
    for kind in ("lora", "full"):
        model = copy.deepcopy(base).train().requires_grad_(True)  # the EMA copy is frozen
        if kind == "lora":
            add_lora(model, rank=args.rank)
        params = trainable_parameters(model)
        print(f"{kind} fine-tuning: {args.tune_steps} steps on {len(tune_x)} bold digits, {params:,} trainable parameters", flush=True)
        torch.manual_seed(1)
        t0 = time.perf_counter()
        result = fit(model, loss, (tune_x,), dataclasses.replace(train_config(tune), ema_decay=None), progress=not args.quick)
        seconds = time.perf_counter() - t0
        model = result.model.eval()
        row = {"label": {"lora": f"LoRA rank {args.rank}", "full": "full fine-tuning"}[kind], "trainable_parameters": params,
               "total_parameters": sum(p.numel() for p in base.parameters()), "tune_seconds": seconds,
               "seconds_per_step": seconds / args.tune_steps}  # fmt: skip
        if kind == "lora":
            path = save_lora(model, Path(tempfile.mkdtemp()) / "bold.safetensors")
            row["adapter_bytes"] = path.stat().st_size
            merge_lora(model)
            row.update(score(model, "lora"))
            with lora_disabled(model):  # the base weights restored exactly: the original domain is kept
                kept = score(model, "lora_disabled")
            row["disabled"] = {k: v for k, v in kept.items() if k.startswith("FID") or k == "thickness"}
        else:
            row.update(score(model, "full"))
        rows[kind] = row
    if args.quick:
        print("quick run: nothing saved")
        return
    save("lora_mnist", {
        **info, "n": args.n, "base_steps": args.base_steps, "tune_steps": args.tune_steps, "tune_images": len(tune_x),
        "rank": args.rank, "tune_lr": args.tune_lr, "batch": options.batch_size, "sampling": f"DDIM {sampling_steps} steps (trailing), η = 0",
        "feature_net": net.describe(), "reference": f"{args.n} real {net.reference} images (bold: the same, dilated)", "rows": rows,
    })  # fmt: skip


if __name__ == "__main__":
    main()
