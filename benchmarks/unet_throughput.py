"""Like-for-like U-Net throughput: genlab's UNet vs diffusers' UNet2DModel, same image size, matched size.

    python benchmarks/unet_throughput.py            # the full run (writes benchmarks/results/unet_throughput.json)
    python benchmarks/unet_throughput.py --quick    # a smoke test: few iterations, result to a temp file

Both networks take the same images (1 channel, 28×28 and 32×32: diffusers' three-level UNet2DModel
accepts 28×28 as well, 28 → 14 → 7, like genlab's) and come in pairs whose parameter counts are
within 10 % of each other (checked, the script stops otherwise):

- pair "0.9M": genlab's course default (pipeline.default_unet_config: 32·(1, 2, 2) channels, one
  residual block per level, attention at the lowest level) vs UNet2DModel with (32, 56, 56).
- pair "1.1M": genlab with 36·(1, 2, 2) channels vs UNet2DModel with (32, 64, 64), the diffusers
  model the earlier version of this benchmark used.

Both diffusers models have the same layout as genlab's: three levels, attention at the lowest one
and in the middle block. For each network, in one run: parameters; FLOPs per image of one forward
pass and of one training forward+backward (counted by torch.utils.flop_counter.FlopCounterMode:
convolutions, matmuls and attention, a multiply-add = 2 FLOPs; norms and activations not counted);
training images/s (forward + backward + AdamW step, median over iterations); DDIM-50 sampling
images/s (50 network evaluations under no_grad plus the deterministic DDIM update, the same loop
for both, so only the networks differ); achieved GFLOP/s of each; and this machine's fp32 2048²
matmul GFLOP/s as the yardstick. Variants: memory format (genlab's UNet is channels_last by
construction; NCHW is forced with a pre-hook on every conv) and, for pair "0.9M" at 32×32,
torch.compile of each library's default (--compile-sizes / --compile-models to change that). A
compiled row runs in a child process with a time limit and a fresh inductor cache (so its compile
time is a cold one); a failure or a run past the limit is recorded with its reason, not raised.

On a quiet 2-core machine the full run should take 10–15 minutes, half of it compiling; --quick
(a couple of steps per row, torch.compile of genlab's net only) 3–5 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, header  # noqa: E402

from genlab.nn import UNet, UNetConfig, count_parameters  # noqa: E402

T = 1000  # diffusion steps of the (linear β) schedule the sampler walks through
DDIM_STEPS = 50
PARAM_TOLERANCE = 0.10  # the networks of a pair must be within 10 % in parameter count

# name → (genlab UNetConfig overrides, diffusers block_out_channels)
PAIRS = {
    "0.9M": (dict(base_channels=32, channel_mults=(1, 2, 2), num_res_blocks=1), (32, 56, 56)),
    "1.1M": (dict(base_channels=36, channel_mults=(1, 2, 2), num_res_blocks=1, groups=4), (32, 64, 64)),
}
EAGER_VARIANTS = {  # pair → model → memory formats measured eagerly (first = that library's default)
    "0.9M": {"genlab": ("channels_last", "nchw"), "diffusers": ("nchw", "channels_last")},
    "1.1M": {"genlab": ("channels_last",), "diffusers": ("nchw",)},
}
COMPILE_PAIRS = ("0.9M",)  # torch.compile rows (each costs one or two minutes of compiling on a small CPU)


# ---------------------------------------------------------------- the two networks
def genlab_config(pair: str, size: int) -> UNetConfig:
    return UNetConfig(image_size=size, in_channels=1, attention_resolutions=(size // 4,), **PAIRS[pair][0])


def check_course_default(size: int) -> str:
    """Whether pair "0.9M"'s genlab config is still pipeline.default_unet_config (import may fail mid-rewrite)."""
    try:
        from genlab.pipeline import default_unet_config

        return "yes" if default_unet_config(size) == genlab_config("0.9M", size) else "NO, the course default has changed"
    except Exception as e:  # noqa: BLE001 — only informative
        return f"not checked ({type(e).__name__})"


class DiffusersEps(torch.nn.Module):
    """diffusers' UNet2DModel behind genlab's model(x, t, y) interface."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x, t, y=None):
        return self.unet(x, t).sample


def diffusers_kwargs(pair: str, size: int) -> dict:
    ch = PAIRS[pair][1]
    return dict(
        sample_size=size, in_channels=1, out_channels=1, block_out_channels=ch, layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"), norm_num_groups=8,
    )  # fmt: skip


def _to_nchw(module, args):
    return (args[0].contiguous(),) + args[1:]


def build(model: str, pair: str, size: int, memory_format: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if model == "genlab":
        net = UNet(genlab_config(pair, size))  # channels_last weights; forward converts its input
    else:
        from diffusers import UNet2DModel

        net = DiffusersEps(UNet2DModel(**diffusers_kwargs(pair, size)))
    if memory_format == "channels_last":
        net = net.to(memory_format=torch.channels_last)
    else:  # NCHW: contiguous weights, and every conv's input made contiguous (a no-op after the first)
        net = net.to(memory_format=torch.contiguous_format)
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.register_forward_pre_hook(_to_nchw)
    return net


# ---------------------------------------------------------------- measurements
def matmul_gflops(n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / min(times) / 1e9  # the best repetition: what this machine can do


def _attention_by_matmuls(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kwargs):
    """softmax(Q Kᵀ · scale) V with plain matmuls, which FlopCounterMode counts."""
    if attn_mask is not None or is_causal or dropout_p:
        raise NotImplementedError("only unmasked attention without dropout is counted")
    return (q @ k.transpose(-1, -2) * (scale if scale is not None else q.shape[-1] ** -0.5)).softmax(-1) @ v


@contextlib.contextmanager
def attention_counted():
    """While counting, F.scaled_dot_product_attention is the same formula in matmuls: FlopCounterMode
    does not count the fused CPU kernel (torch 2.13), which would leave out 4·N²·d FLOPs per block."""
    fused = F.scaled_dot_product_attention
    F.scaled_dot_product_attention = _attention_by_matmuls
    try:
        yield
    finally:
        F.scaled_dot_product_attention = fused


def count_flops(model, size: int) -> tuple[int, int]:
    """FLOPs per image of one forward pass, and of one forward + backward (a training step without the optimiser).

    Attention is counted: while counting, the fused kernel is replaced by the same formula in matmuls."""
    x, t = torch.randn(2, 1, size, size), torch.tensor([10, 500])
    with attention_counted(), torch.no_grad(), FlopCounterMode(display=False) as fwd:
        model(x, t)
    with attention_counted(), FlopCounterMode(display=False) as train:
        model(x, t).square().mean().backward()
    model.zero_grad(set_to_none=True)
    return fwd.get_total_flops() // 2, train.get_total_flops() // 2


def train_throughput(model, size: int, batch: int, iters: int, warmup: int) -> tuple[float, float]:
    """(images/s from the median step, seconds of the first step — includes compiling if any)."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, size, size, generator=g)
    target = torch.randn(batch, 1, size, size, generator=g)
    t = torch.randint(0, T, (batch,), generator=g)
    times = []
    for _ in range(warmup + iters):
        t0 = time.perf_counter()
        loss = (model(x, t) - target).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return batch / statistics.median(times[warmup:]), times[0]


def ddim_timesteps(steps: int) -> list[int]:
    """The "trailing" grid T-1, …, 0 in ``steps`` equal strides."""
    return [int(round(T - i * T / steps)) - 1 for i in range(steps)]


def sample_throughput(model, size: int, batch: int, timed_steps: int, warmup: int) -> tuple[float, float]:
    """DDIM-50 images/s = batch / (50 × the mean time of one step), from ``timed_steps`` of the 50
    (all 50 in a full run), after ``warmup`` untimed steps; and the seconds of the first step."""
    model.eval()
    alpha_bar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, T, dtype=torch.float64), 0).float()
    grid = ddim_timesteps(DDIM_STEPS)
    x = torch.randn(batch, 1, size, size, generator=torch.Generator().manual_seed(0))
    times = []
    with torch.no_grad():
        for i in range(warmup + timed_steps):
            j = i % DDIM_STEPS
            t0 = time.perf_counter()
            a_t = alpha_bar[grid[j]]
            a_prev = alpha_bar[grid[j + 1]] if j + 1 < DDIM_STEPS else torch.tensor(1.0)
            eps = model(x, torch.full((batch,), grid[j], dtype=torch.long))
            x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
            x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps  # deterministic DDIM (η = 0)
            times.append(time.perf_counter() - t0)
    if not torch.isfinite(x).all():
        raise RuntimeError("sampling produced non-finite values")
    return batch / (DDIM_STEPS * statistics.fmean(times[warmup:])), times[0]


def _phase(text: str) -> None:
    print(f"PHASE {text}", flush=True)  # read back by measure_in_child if the child runs out of time


def measure(spec: dict, args, phase=lambda text: None) -> dict:
    """One row: build the network the spec names, count its FLOPs, time training and sampling."""
    model = build(spec["model"], spec["pair"], spec["size"], spec["memory_format"])
    params = count_parameters(model)
    fwd, train = count_flops(model, spec["size"])
    row = {**spec, "params": params, "forward_gflop_per_image": fwd / 1e9, "train_gflop_per_image": train / 1e9}
    if spec["compiled"]:
        model = torch.compile(model, dynamic=False)
    t0 = time.perf_counter()
    phase("compiling and timing training")
    train_ips, first_train = train_throughput(model, spec["size"], args.batch, args.iters, args.warmup)
    phase(f"compiling and timing sampling (training done after {time.perf_counter() - t0:.0f} s)")
    sample_ips, first_sample = sample_throughput(model, spec["size"], args.sample_batch, args.sample_steps, args.warmup)
    row.update(
        train_images_per_s=train_ips, train_gflops=train * train_ips / 1e9,
        sample_images_per_s_ddim50=sample_ips, sample_gflops=DDIM_STEPS * fwd * sample_ips / 1e9,
        seconds_per_1000_samples=1000 / sample_ips, status="ok",
    )  # fmt: skip
    if spec["compiled"]:  # the first call of each mode compiles: its time minus one ordinary step
        row["compile_seconds"] = (first_train - args.batch / train_ips) + (first_sample - args.sample_batch / (DDIM_STEPS * sample_ips))
    return row


def measure_in_child(spec: dict, args) -> dict:
    """A torch.compile row in a child process (own session, fresh inductor cache, time limit)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    cmd += ["--batch", str(args.batch), "--iters", str(args.iters), "--warmup", str(args.warmup)]
    cmd += ["--sample-batch", str(args.sample_batch), "--sample-steps", str(args.sample_steps)]
    with tempfile.TemporaryDirectory(prefix="genlab-inductor-") as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache, "TRITON_CACHE_DIR": cache}
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
        t0 = time.perf_counter()
        try:
            out, err = proc.communicate(timeout=args.compile_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the child and the compile workers it started
            out, _ = proc.communicate()
            phases = [ln[6:] for ln in out.splitlines() if ln.startswith("PHASE ")]
            where = f", while {phases[-1]}" if phases else ""
            return {**spec, "status": f"torch.compile run stopped at the {args.compile_timeout:.0f} s limit{where}"}
        wall = time.perf_counter() - t0
    for line in reversed(out.splitlines()):
        if line.startswith("ROW "):
            return {**json.loads(line[4:]), "child_wall_seconds": wall}
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    reason = lines[-1] if lines else f"exit code {proc.returncode}, no output"
    return {**spec, "status": f"torch.compile failed: {reason[:300]}"}


# ---------------------------------------------------------------- the run
def row_label(r: dict) -> str:
    fmt = "channels_last" if r["memory_format"] == "channels_last" else "NCHW"
    return f"{r['model']} [{r['pair']}] {fmt}{' + torch.compile' if r['compiled'] else ''}"


def print_row(r: dict) -> None:
    size = f"{r['size']}×{r['size']}"
    if r["status"] != "ok":
        print(f"{size} {row_label(r)}: {r['status']}", flush=True)
        return
    extra = f", compile ≈{r['compile_seconds']:.0f} s" if "compile_seconds" in r else ""
    print(f"{size} {row_label(r)}: {r['params'] / 1e6:.3f} M params, {r['forward_gflop_per_image']:.3f} GFLOP/img fwd "
          f"({r['train_gflop_per_image']:.3f} fwd+bwd) | train {r['train_images_per_s']:.0f} img/s ({r['train_gflops']:.0f} GFLOP/s) "
          f"| DDIM-50 {r['sample_images_per_s_ddim50']:.2f} img/s ({r['sample_gflops']:.0f} GFLOP/s){extra}", flush=True)  # fmt: skip


def ratios(rows: list[dict]) -> list[dict]:
    """genlab ÷ diffusers for each (pair, size): both as shipped (eager, default memory format), and best vs best."""
    out = []
    for pair in PAIRS:
        for size in sorted({r["size"] for r in rows}):
            ok = [r for r in rows if r["pair"] == pair and r["size"] == size and r["status"] == "ok"]
            g = [r for r in ok if r["model"] == "genlab"]
            d = [r for r in ok if r["model"] == "diffusers"]
            if not g or not d:
                continue
            entry = {"pair": pair, "size": size}
            gd = next((r for r in g if r["default"]), None)
            dd = next((r for r in d if r["default"]), None)
            for key, name in (("train_images_per_s", "train"), ("sample_images_per_s_ddim50", "sample")):
                if gd and dd:
                    entry[f"{name}_default"] = gd[key] / dd[key]
                bg, bd = max(g, key=lambda r: r[key]), max(d, key=lambda r: r[key])
                entry[f"{name}_best"] = bg[key] / bd[key]
                entry[f"{name}_best_rows"] = [row_label(bg), row_label(bd)]
            out.append(entry)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few iterations, for a smoke test; writes to a temp file unless --out is given")
    ap.add_argument("--batch", type=int, default=128, help="training batch")
    ap.add_argument("--iters", type=int, default=None, help="timed training steps (default 10; 2 with --quick)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed first steps (default 3; 1 with --quick)")
    ap.add_argument("--sample-batch", type=int, default=64)
    ap.add_argument("--sample-steps", type=int, default=None, help=f"DDIM steps timed of the {DDIM_STEPS} (default all; 3 with --quick)")
    ap.add_argument("--sizes", default="28,32", help="image sizes, comma-separated")
    ap.add_argument("--compile-sizes", default=None, help="sizes that get torch.compile rows (default 32; '' for none)")
    ap.add_argument("--compile-models", default=None, help="networks that get torch.compile rows (default genlab,diffusers; genlab with --quick)")
    ap.add_argument("--compile-timeout", type=float, default=None, help="seconds per torch.compile row (default 900; 420 with --quick)")
    ap.add_argument("--out", type=Path, default=None, help="results JSON (default benchmarks/results/unet_throughput.json)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    q = args.quick
    args.iters = args.iters if args.iters is not None else (2 if q else 10)
    args.warmup = args.warmup if args.warmup is not None else (1 if q else 3)
    args.sample_steps = args.sample_steps if args.sample_steps is not None else (3 if q else DDIM_STEPS)
    args.compile_timeout = args.compile_timeout if args.compile_timeout is not None else (420 if q else 900)
    compile_sizes = [int(s) for s in (args.compile_sizes if args.compile_sizes is not None else "32").split(",") if s]
    compile_models = (args.compile_models or ("genlab" if q else "genlab,diffusers")).split(",")
    if args.worker:  # a torch.compile row, run by measure_in_child
        print("ROW " + json.dumps(measure(json.loads(args.worker), args, phase=_phase)), flush=True)
        return

    t_start = time.perf_counter()
    sizes = [int(s) for s in args.sizes.split(",")]
    info = header("U-Net throughput, genlab vs diffusers at the same image size and parameter count (CPU, fp32)" + (" — QUICK smoke test, not a measurement" if q else ""))
    peak_start = matmul_gflops(reps=3 if q else 10)
    print(f"fp32 matmul (2048²): {peak_start:.0f} GFLOP/s | training batch {args.batch} (AdamW), {args.iters} timed steps after {args.warmup}; "
          f"sampling batch {args.sample_batch}, DDIM {DDIM_STEPS} ({args.sample_steps} steps timed)")  # fmt: skip

    pairs = []
    for name, (gkw, dch) in PAIRS.items():
        pg = count_parameters(build("genlab", name, 32, "channels_last"))
        pd = count_parameters(build("diffusers", name, 32, "nchw"))
        diff = abs(pg - pd) / max(pg, pd)
        assert diff <= PARAM_TOLERANCE, f"pair {name}: {pg} vs {pd} parameters differ by {diff:.0%}"
        genlab_desc = f"UNetConfig({', '.join(f'{k}={v}' for k, v in gkw.items())}, attention at size/4)"
        diffusers_desc = f"UNet2DModel(block_out_channels={dch}, layers_per_block=1, attention at the lowest level, norm_num_groups=8)"
        pairs.append({"pair": name, "genlab": genlab_desc, "diffusers": diffusers_desc, "genlab_params": pg, "diffusers_params": pd, "param_difference": diff})
        print(f"pair {name}: genlab {genlab_desc}: {pg:,} params | diffusers {diffusers_desc}: {pd:,} params | differ by {diff:.1%}")
    course = {s: check_course_default(s) for s in sizes}
    print("pair 0.9M's genlab net is pipeline.default_unet_config: " + ", ".join(f"{s}×{s} {v}" for s, v in course.items()))

    specs = []
    for size in sizes:
        for pair, by_model in EAGER_VARIANTS.items():
            for model, formats in by_model.items():
                specs += [dict(model=model, pair=pair, size=size, memory_format=f, compiled=False, default=i == 0) for i, f in enumerate(formats)]
        if size in compile_sizes:
            for pair in COMPILE_PAIRS:
                for model in compile_models:
                    fmt = EAGER_VARIANTS[pair][model][0]
                    specs.append(dict(model=model, pair=pair, size=size, memory_format=fmt, compiled=True, default=False))
    rows = []
    for spec in specs:
        if spec["compiled"]:
            row = measure_in_child(spec, args)
        else:
            try:
                row = measure(spec, args)
            except Exception as e:  # noqa: BLE001 — record and go on
                row = {**spec, "status": f"failed: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"}
        rows.append(row)
        print_row(row)

    peak_end = matmul_gflops(reps=3 if q else 10)
    peak = max(peak_start, peak_end)
    print(f"fp32 matmul (2048²) again at the end: {peak_end:.0f} GFLOP/s (at the start {peak_start:.0f}; "
          "a large difference means something else was using the CPU)")
    summary = ratios(rows)
    for e in summary:
        line = f"genlab ÷ diffusers, pair {e['pair']}, {e['size']}×{e['size']}: "
        if "train_default" in e:
            line += f"as shipped (eager, default memory format) training ×{e['train_default']:.2f}, sampling ×{e['sample_default']:.2f}; "
        line += f"best of each training ×{e['train_best']:.2f}, sampling ×{e['sample_best']:.2f}"
        print(line)
    wall = time.perf_counter() - t_start
    print(f"total {wall:.0f} s")
    payload = {
        **info, "quick": q, "matmul_gflops": peak, "matmul_gflops_start": peak_start, "matmul_gflops_end": peak_end, "batch": args.batch, "train_iters": args.iters, "warmup": args.warmup,
        "sample_batch": args.sample_batch, "ddim_steps": DDIM_STEPS, "sample_steps_timed": args.sample_steps,
        "sizes": sizes, "pairs": pairs, "course_default_check": {str(s): v for s, v in course.items()},
        "flops_note": "FlopCounterMode: conv, matmul and attention FLOPs (multiply-add = 2); norms, activations and AdamW not counted",
        "rows": rows, "ratios": summary, "wall_seconds": wall,
    }  # fmt: skip
    out = args.out or (Path(tempfile.gettempdir()) / "unet_throughput_quick.json" if q else RESULTS / "unet_throughput.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
