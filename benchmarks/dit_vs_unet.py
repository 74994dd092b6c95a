"""DiT vs U-Net on MNIST: at equal CPU time, at equal training FLOPs, and a DiT size sweep (parameters vs FID).

    GENLAB_DATA=../shared/data/mnist python benchmarks/dit_vs_unet.py [--budget-s 180] [--n 1000]
    python benchmarks/dit_vs_unet.py --smoke      # a tiny run to check the script (≈ 2 min); nothing saved

Setup, the same for every row: class-conditional MNIST (10 classes, condition dropout 0.1), the
rectified-flow objective (``pipeline.flow_process("ot")``: x_t = (1 − t) x₀ + t ε, velocity
prediction), ``TrainOptions`` defaults (AdamW lr 2e-3, batch 128 unless ``--batch``, warm-up,
cosine decay, EMA 0.995, seed 0), training data ``genlab.metrics.generator_training_set`` (no
reference image). Sampling: flow-rk4 with ``--sampling-steps`` steps (4·steps − 1 network calls),
no guidance (w = 1), labels i mod 10, seed 0 — the same noise for every model; the samples are
clamped to [-1, 1] before scoring (RK4's last step is not clipped; the share clamped is stored).
FID (plus KID and the conditional accuracy of the feature net's classifier) at one N for every row
against N real held-out images, on genlab's MNIST feature network. Only the network and the
number of steps change between rows:

- ``unet``: the course U-Net (``pipeline.default_unet_config``), ``--budget-s`` seconds of CPU time.
- ``dit``: the default ``DiTConfig`` (p = 4: 49 tokens, d = 128, depth 4, 4 heads), the same CPU time.
- ``unet_flops``: the U-Net trained for the DiT row's training FLOPs (steps × batch × FLOPs of one
  forward + backward per image, counted by unet_throughput.count_flops with the attention written
  as matmuls: FlopCounterMode does not see the fused CPU attention kernel); ``--flops-match both``
  adds ``dit_flops``, the DiT trained for the U-Net row's FLOPs (≈ 2–3 × the budget in time).
- ``dit_<key><value>``: the DiT with one setting changed (``--sweep hidden_size=64,128,192``),
  all at the DiT row's number of steps (the same images seen): parameters vs FID.
- ``floor``: N real training images — what a generator that reproduced its training data scores.

Budget: seconds of this process's CPU time (``time.process_time``, all threads together), so other
work on a shared machine does not shrink a model's share; wall time is reported too. Steps come
from a calibration (a warm-up run, then runs of 8 and 32 steps whose difference is the cost of 24),
less a 15 % margin. Threads: ``--threads auto`` takes 2 when the 1-minute load average is below
0.5 (an idle machine), else 1, and says which; the chosen count is stored. Sampling is outside the
budget; its wall time is reported.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, feature_network_or_exit, header, save  # noqa: E402
from families_mnist import Timed  # noqa: E402
from mnist_5min import scored, steps_for  # noqa: E402
from unet_throughput import count_flops  # noqa: E402

from genlab.metrics import generator_training_set  # noqa: E402
from genlab.nn import DiTConfig, count_parameters  # noqa: E402
from genlab.pipeline import DiffusionSpec, TrainOptions, build_model, flow_process, generate, train_diffusion  # noqa: E402
from genlab.viz import save_grid  # noqa: E402

SAMPLER = "flow-rk4"


def make_spec(shape: tuple[int, ...]) -> DiffusionSpec:
    process = flow_process("ot")
    return DiffusionSpec(dataset="mnist", shape=shape, num_classes=10, schedule=process.kind, prediction="velocity",
                         process=process.config())  # fmt: skip


def network_options(base: TrainOptions, network: str, dit: dict | None = None) -> TrainOptions:
    return dataclasses.replace(base, network=network, dit=dict(dit or {}), ckpt_every=0)


def describe_network(model) -> dict:
    cfg = model.config
    return {"class": type(model).__name__, "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}}


def flops_per_image(spec: DiffusionSpec, options: TrainOptions) -> tuple[int, int, int, dict]:
    """(parameters, forward FLOPs per image, forward + backward FLOPs per image, network description)."""
    model = build_model(spec, options.network, options.dit)
    fwd, train = count_flops(model, spec.shape[-1])
    return count_parameters(model), fwd, train, describe_network(model)


def train(spec, data, options: TrainOptions, steps: int):
    result = train_diffusion(spec, data, dataclasses.replace(options, steps=steps), progress=False)
    return result.ema.eval(), result.losses


def calibrate(spec, data, options: TrainOptions, cpu_seconds: float) -> tuple[int, dict]:
    """Steps that fit ``cpu_seconds``: a warm-up run (one-off costs), then 8 and 32 steps; their
    difference is the CPU cost of 24 steps."""
    train(spec, data, options, 3)
    with Timed() as short:
        train(spec, data, options, 8)
    with Timed() as long:
        train(spec, data, options, 32)
    rate = 24 / max(long.cpu - short.cpu, 1e-3)  # steps per CPU second
    return steps_for(cpu_seconds, rate), {"calibration_cpu_seconds": [short.cpu, long.cpu], "calibrated_steps_per_cpu_second": rate}


def parse_sweep(text: str) -> tuple[str, list[int]]:
    key, _, values = text.partition("=")
    if key not in ("hidden_size", "depth", "patch_size", "num_heads") or not values:
        raise SystemExit(f"--sweep: {text!r}; write KEY=V1,V2,… with KEY one of hidden_size, depth, patch_size, num_heads")
    try:
        return key, [int(v) for v in values.split(",")]
    except ValueError:
        raise SystemExit(f"--sweep: the values of {key} must be integers, got {values!r}") from None


def pick_threads(choice: str) -> tuple[int, str]:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if choice != "auto":
        return int(choice), f"{choice} thread(s) as asked (load average {load:.2f})"
    if load < 0.5 and (os.cpu_count() or 1) >= 2:
        return 2, f"2 threads: the machine was idle (load average {load:.2f})"
    return 1, f"1 thread: the machine was not idle (load average {load:.2f} ≥ 0.5), so 2 threads would be timed against other work"


def figure(rows: dict, sweep_key: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    floor = rows["floor"]["FID"]["value"]
    for name, r in rows.items():
        if "train_flops" not in r:
            continue
        colour = "tab:blue" if r["network"] == "unet" else "tab:orange"
        a.scatter(r["train_flops"] / 1e12, r["FID"]["value"], color=colour)
        a.annotate(name, (r["train_flops"] / 1e12, r["FID"]["value"]), fontsize=8, xytext=(4, 3), textcoords="offset points")
    a.axhline(floor, color="grey", ls="--", lw=1, label="floor (real images)")
    a.set(xlabel="training TFLOP (steps × batch × fwd+bwd FLOPs per image)", ylabel="FID", title="FID vs training compute")
    a.legend(fontsize=8)
    sweep = sorted((r for r in rows.values() if r.get("sweep")), key=lambda r: r["params"])
    b.plot([r["params"] / 1e6 for r in sweep], [r["FID"]["value"] for r in sweep], "o-", color="tab:orange")
    for r in sweep:
        b.annotate(f"{sweep_key}={r['network_config']['config'][sweep_key]}", (r["params"] / 1e6, r["FID"]["value"]), fontsize=8,
                   xytext=(4, 3), textcoords="offset points")  # fmt: skip
    b.axhline(floor, color="grey", ls="--", lw=1)
    b.set(xlabel="parameters (M)", ylabel="FID", title=f"DiT size sweep ({sweep[0]['steps'] if sweep else 0} steps each)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget-s", type=float, default=180.0, help="CPU seconds of training for the equal-time rows")
    ap.add_argument("--n", type=int, default=1000, help="samples scored per row, and real reference images")
    ap.add_argument("--sampling-steps", type=int, default=6, help=f"{SAMPLER} steps (4·steps − 1 network calls)")
    ap.add_argument("--sweep", default="hidden_size=64,128,192", help="DiT setting swept at the DiT row's steps, KEY=V1,V2,…")
    ap.add_argument("--flops-match", default="unet", choices=("unet", "both"),
                    help="unet: the U-Net at the DiT's training FLOPs; both: also the DiT at the U-Net's")
    ap.add_argument("--batch", type=int, default=TrainOptions.batch_size, help="training batch of every row (default: TrainOptions' 128)")
    ap.add_argument("--threads", default="auto", help="torch threads: auto (2 if the machine is idle, else 1) or a number")
    ap.add_argument("--smoke", action="store_true", help="a tiny run to check the script: 6 s budgets, N = 200, 2 sampling steps, nothing saved")
    args = ap.parse_args()
    if args.smoke:
        args.budget_s, args.n, args.sampling_steps, args.sweep = 6.0, 200, 2, "hidden_size=32,128"
    sweep_key, sweep_values = parse_sweep(args.sweep)
    threads, threads_note = pick_threads(args.threads)
    torch.set_num_threads(threads)
    t_start = time.perf_counter()
    info = header("DiT vs U-Net on MNIST (class-conditional rectified flow): equal CPU time, equal FLOPs, DiT size sweep"
                  + (" — SMOKE run, not a measurement" if args.smoke else ""))  # fmt: skip
    print(threads_note, flush=True)
    net = feature_network_or_exit("mnist", "MNIST")
    train_x, train_y = generator_training_set(net, args.n)
    data = (train_x, train_y)
    spec = make_spec(tuple(train_x.shape[1:]))
    if args.batch < 1:
        raise SystemExit(f"--batch must be a positive integer, got {args.batch}")
    base = TrainOptions(batch_size=args.batch)
    labels = torch.arange(args.n) % 10
    out_dir = Path(tempfile.mkdtemp(prefix="dit_vs_unet_")) if args.smoke else RESULTS
    print(f"data: {len(train_x)} training images; reference: {args.n} real {net.reference} images; features: {net.describe()}; "
          f"sampler {SAMPLER}, {args.sampling_steps} steps, no guidance; budget {args.budget_s:.0f} CPU s", flush=True)  # fmt: skip

    floor_idx = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(1))[: args.n]
    print(f"floor: {args.n} real training images", flush=True)
    rows: dict[str, dict] = {"floor": {"label": f"{args.n} real training images (the floor)",
                                       **scored(train_x[floor_idx], "mnist", args.n, train_y[floor_idx], net)}}  # fmt: skip

    def run(name: str, label: str, options: TrainOptions, steps: int, extra: dict | None = None) -> dict:
        params, fwd, train_flops, described = flops_per_image(spec, options)
        load = round(os.getloadavg()[0], 2)
        print(f"{name}: {label} — {steps} steps, {params:,} parameters, {fwd / 1e6:.1f} MFLOP forward / {train_flops / 1e6:.1f} MFLOP "
              f"forward+backward per image (load average {load})", flush=True)  # fmt: skip
        with Timed() as t:
            model, losses = train(spec, data, options, steps)
        with Timed() as s:
            samples = generate(model, spec, args.n, sampler=SAMPLER, steps=args.sampling_steps, labels=labels, seed=0, batch_size=250)
        outside = float(((samples < -1) | (samples > 1)).float().mean())
        samples = samples.clamp(-1, 1)  # the ODE's last step is not clipped to the data range (x̂₀ is)
        total = steps * options.batch_size * train_flops
        row = {"label": label, "network": options.network, "network_config": described, "params": params,
               "forward_flops_per_image": fwd, "train_flops_per_image": train_flops, "steps": steps, "train_flops": total,
               "train_cpu_seconds": t.cpu, "train_wall_seconds": t.wall, "achieved_train_gflops_per_cpu_second": total / t.cpu / 1e9,
               "final_loss": sum(losses[-50:]) / len(losses[-50:]), "sample_wall_seconds": s.wall, "pixels_clamped": outside, "load_average_at_start": load,
               **(extra or {})}  # fmt: skip
        print(f"  trained in {t.cpu:.0f} CPU s / {t.wall:.0f} s wall ({row['achieved_train_gflops_per_cpu_second']:.1f} GFLOP per CPU s); "
              f"final loss {row['final_loss']:.4f}; sampling {s.wall:.0f} s", flush=True)  # fmt: skip
        row.update(scored(samples, "mnist", args.n, labels, net))
        grid = out_dir / f"dit_vs_unet_{name}.png"
        save_grid(samples[:100], grid, nrow=10, scale=2)  # columns: classes 0–9
        row["grid"] = str(grid.relative_to(RESULTS.parent.parent)) if not args.smoke else str(grid)
        rows[name] = row
        return row

    unet_opts, dit_opts = network_options(base, "unet"), network_options(base, "dit")
    calib = {}
    for name, opts in (("unet", unet_opts), ("dit", dit_opts)):
        steps, cal = calibrate(spec, data, opts, args.budget_s)
        calib[name] = (steps, cal)
        print(f"calibration {name}: {cal['calibrated_steps_per_cpu_second']:.2f} steps per CPU s → {steps} steps for {args.budget_s:.0f} CPU s", flush=True)
    run("unet", "U-Net default, equal CPU time", unet_opts, *calib["unet"])
    dit = run("dit", "DiT default, equal CPU time", dit_opts, calib["dit"][0], {**calib["dit"][1], "sweep": True})
    unet = rows["unet"]
    steps = max(round(dit["train_flops"] / (unet["train_flops_per_image"] * base.batch_size)), 1)
    run("unet_flops", "U-Net at the DiT row's training FLOPs", unet_opts, steps)
    if args.flops_match == "both":
        steps = max(round(unet["train_flops"] / (dit["train_flops_per_image"] * base.batch_size)), 1)
        run("dit_flops", "DiT at the U-Net row's training FLOPs", dit_opts, steps)
    default_value = getattr(DiTConfig(), sweep_key)
    for value in sweep_values:
        if value == default_value:
            continue  # the DiT row itself
        opts = network_options(base, "dit", {sweep_key: value})
        run(f"dit_{sweep_key.split('_')[0]}{value}", f"DiT {sweep_key}={value}, the DiT row's steps", opts, dit["steps"], {"sweep": True})

    floor = rows["floor"]["FID"]["value"]
    print(f"\n{'row':12s} {'params':>9s} {'MFLOP/img':>10s} {'steps':>6s} {'train PFLOP':>11s} {'CPU s':>6s} {'FID':>7s} {'×floor':>7s} {'KID':>8s} {'cond acc':>8s}")
    for name, r in rows.items():
        head = (f"{r['params'] / 1e6:8.2f}M {r['train_flops_per_image'] / 1e6:10.1f} {r['steps']:6d} {r['train_flops'] / 1e15:11.3f} {r['train_cpu_seconds']:6.0f}"
                if "steps" in r else f"{'—':>9s} {'—':>10s} {'—':>6s} {'—':>11s} {'—':>6s}")  # fmt: skip
        print(f"{name:12s} {head} {r['FID']['value']:7.2f} {r['FID']['value'] / floor:7.2f} {r['KID']['value']:8.4f} "
              f"{r['conditional accuracy']['value']:8.1%}")
    fig_path = out_dir / "dit_vs_unet_fid.png"
    figure(rows, sweep_key, fig_path)
    wall = time.perf_counter() - t_start
    print(f"total {wall:.0f} s wall; figure {fig_path}")
    if args.smoke:
        print(f"smoke run: nothing saved to benchmarks/results (grids and figure in {out_dir})")
        return
    save("dit_vs_unet", {
        **info, "command": "python benchmarks/dit_vs_unet.py " + " ".join(sys.argv[1:]), "threads_note": threads_note,
        "n": args.n, "reference": f"{args.n} real {net.reference} images", "feature_net": net.describe(),
        "train_images": len(train_x), "budget_cpu_seconds": args.budget_s, "sampling": f"{SAMPLER}, {args.sampling_steps} steps "
        f"({4 * args.sampling_steps - 1} network calls), no guidance, labels i mod 10, seed 0; samples clamped to [-1, 1] "
        "before scoring (share of pixels outside: pixels_clamped)", "objective": "rectified flow "
        "(flow_process('ot'), velocity prediction), class-conditional (10 classes, condition dropout 0.1)",
        "options": dataclasses.asdict(base), "spec": json_safe(dataclasses.asdict(spec)), "sweep": {"key": sweep_key, "values": sweep_values},
        "flops_note": "torch.utils.flop_counter (via unet_throughput.count_flops, with scaled_dot_product_attention written as "
                      "matmuls so that attention is counted): matmuls, convolutions and attention, a multiply-add = 2 FLOPs; "
                      "norms, activations, the optimiser and the EMA not counted",
        "figure": str(fig_path.relative_to(RESULTS.parent.parent)), "rows": rows, "wall_seconds": wall,
    })  # fmt: skip


def json_safe(value):
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


if __name__ == "__main__":
    main()
