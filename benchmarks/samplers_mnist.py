"""Quality per function evaluation: every sampler at a few NFE on one MNIST model, against DDPM-1000.

    GENLAB_DATA=../shared/data/mnist python benchmarks/samplers_mnist.py [--models eps] [--n 500] [--train-steps 1000]
    python benchmarks/samplers_mnist.py --quick        # a smoke run: tiny model, N = 200, nothing saved

Cost on 2 CPU cores: the course U-Net denoises a few hundred images per second, so the DDPM-1000
reference alone makes N · 1000 network evaluations — about half an hour at N = 500, two hours at
N = 2000. The default N = 500 keeps one model's run near an hour; FIDs are compared at equal N only.
``--models v_zt`` reruns one model alone: the saved file keeps the other models of an earlier run
measured the same way (each with its own date).

For each model (``--models``: ``eps`` = ε-prediction on the linear schedule, the course default;
``v_zt`` = v-prediction on the zero-terminal-SNR rescaled linear schedule, sampled from pure
noise) one unconditional genlab U-Net is trained for exactly ``--train-steps`` steps (so its quality
does not depend on the machine's load). Then at the same N against N real held-out images with
genlab's MNIST features:

- DDIM, Euler, Heun, DPM-Solver++(2M) and UniPC at each NFE of ``--nfe`` (Heun makes 2N − 1 calls
  in N steps, so it gets the nearest odd NFE at or below), on each sampler's default grid (Karras
  ρ = 7, or trailing timesteps for DDIM and for the zero-terminal-SNR model);
- the adaptive PF-ODE (scipy RK45, genlab's default rtol = atol = 1e-4), with the NFE it chose;
- DDPM with ``--ddpm-steps`` (1000: the original sampler), the reference row.

Every row: FID, KID, NFE, wall time. The aims: FID within 10 % of DDPM-1000 at ≤ 10 NFE, and 1000
samples in under 10 s on 2 cores (timed separately for the best sampler at ≤ 10 NFE).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, header, save  # noqa: E402
from mnist_5min import train_steps  # noqa: E402

from genlab.diffusion import make_schedule  # noqa: E402
from genlab.metrics import evaluate, feature_network, generator_training_set  # noqa: E402
from genlab.pipeline import DiffusionSpec, TrainOptions, build_model, generate  # noqa: E402
from genlab.viz import save_grid  # noqa: E402

METRICS = ("fid", "kid")
FIXED = ("ddim", "euler", "heun", "dpmpp-2m", "unipc")
MODELS = {
    "eps": lambda: DiffusionSpec(dataset="mnist", shape=(1, 28, 28)),
    "v_zt": lambda: DiffusionSpec(dataset="mnist", shape=(1, 28, 28), prediction="v",
                                  process=make_schedule("linear", 1000, zero_terminal_snr=True).config()),
}  # fmt: skip


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def steps_for_nfe(sampler: str, nfe: int) -> int:
    return max((nfe + 1) // 2, 1) if sampler == "heun" else nfe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-steps", type=int, default=1000, help="training steps of each model (batch 128, the course recipe)")
    ap.add_argument("--n", type=int, default=500, help="samples per row, and real reference images")
    ap.add_argument("--nfe", type=ints, default=ints("5,10,20,50"), help="function evaluations per sample to try")
    ap.add_argument("--ddpm-steps", type=int, default=1000)
    ap.add_argument("--models", default="eps,v_zt", help="comma-separated: eps, v_zt")
    ap.add_argument("--quick", action="store_true", help="30 training steps, N = 200, NFE 5 and 10, DDPM 20 steps, nothing saved")
    args = ap.parse_args()
    if args.quick:
        args.train_steps, args.n, args.nfe, args.ddpm_steps = 30, 200, [5, 10], 20
    models = args.models.split(",")
    if unknown := set(models) - set(MODELS):
        raise SystemExit(f"unknown model(s) {sorted(unknown)}; choose from {sorted(MODELS)}")
    info = header("Quality per function evaluation on MNIST")
    net = feature_network("mnist", progress=False)
    train_x, _ = generator_training_set(net, args.n)
    print(f"data: {len(train_x)} training images; reference: {args.n} real {net.reference} images; features: {net.describe()}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    out: dict[str, dict] = {}
    for name in models:
        spec = MODELS[name]()
        print(f"\n== model {name}: {spec.prediction}-prediction; training {args.train_steps} steps", flush=True)
        model, _, stats = train_steps(lambda spec=spec: build_model(spec), spec, (train_x,), TrainOptions(), args.train_steps,
                                      progress=not args.quick)  # fmt: skip
        print(f"  {stats['steps']} steps in {stats['train_seconds']:.0f} s", flush=True)
        rows: dict[str, dict] = {}

        def run(key: str, sampler: str, steps: int) -> None:
            got: dict = {}
            t0 = time.perf_counter()
            x = generate(model, spec, args.n, sampler=sampler, steps=steps, seed=0, batch_size=250, stats=got)
            seconds = time.perf_counter() - t0
            ev = evaluate(x, "mnist", n=args.n, net=net, metrics=METRICS)
            rows[key] = {"sampler": sampler, "steps": steps, "nfe": got["nfe"], "seconds": seconds,
                         "FID": ev["FID"].value, "KID": ev["KID"].value, "KID_std": ev["KID"].std}  # fmt: skip
            print(f"  {key:>16s}: NFE {got['nfe']:6.1f}  FID {ev['FID'].value:7.2f}  KID {ev['KID'].value:.4f}  ({seconds:.0f} s)", flush=True)
            if not args.quick and (sampler in ("ddpm", "ode") or steps_for_nfe(sampler, 10) == steps):
                save_grid(x[:64], RESULTS / f"samplers_mnist_{name}_{key}.png", nrow=8, scale=2)

        run(f"ddpm_{args.ddpm_steps}", "ddpm", args.ddpm_steps)
        for sampler in FIXED:
            for nfe in args.nfe:
                run(f"{sampler}_{nfe}", sampler, steps_for_nfe(sampler, nfe))
        run("ode", "ode", 1)
        ref = rows[f"ddpm_{args.ddpm_steps}"]["FID"]
        few = {k: r for k, r in rows.items() if r["nfe"] <= 10}
        best = min(few, key=lambda k: few[k]["FID"])
        r = rows[best]
        t0 = time.perf_counter()
        generate(model, spec, 1000, sampler=r["sampler"], steps=r["steps"], seed=1, batch_size=250)
        t1000 = time.perf_counter() - t0
        print(f"  DDPM-{args.ddpm_steps} FID {ref:.2f}; best at ≤ 10 NFE: {best} FID {r['FID']:.2f} ({r['FID'] / ref:.2f}× DDPM); "
              f"1000 samples with it in {t1000:.1f} s", flush=True)  # fmt: skip
        out[name] = {"prediction": spec.prediction, "zero_terminal_snr": name == "v_zt", "model": stats, "rows": rows,
                     "ddpm_fid": ref, "best_at_10_nfe": best, "ratio_to_ddpm": r["FID"] / ref, "seconds_1000": t1000,
                     "date": info["date"], "load_average": info["load_average"]}  # fmt: skip
    if args.quick:
        print("quick run: nothing saved")
        return
    settings = {"n": args.n, "reference": f"{args.n} real {net.reference} images", "feature_net": net.describe(), "train_images": len(train_x)}
    kept = earlier_models(settings, {name: set(m["rows"]) for name, m in out.items()}, args.train_steps)
    save("samplers_mnist", {**info, **settings, "models": {**kept, **out}})


def earlier_models(settings: dict, row_keys: dict[str, set], train_steps: int) -> dict[str, dict]:
    """The models of an earlier saved run that this run did not redo, when that run was measured the
    same way (same N, reference, features, training set and steps, same rows), so that one model can
    be rerun alone; each keeps its own date. Anything else is dropped, and said so."""
    path = RESULTS / "samplers_mnist.json"
    if not path.exists():
        return {}
    old = json.loads(path.read_text())
    same = all(old.get(k) == v for k, v in settings.items())
    expected = next(iter(row_keys.values()))
    kept = {}
    for name, m in old.get("models", {}).items():
        if name in row_keys:
            continue
        if same and set(m["rows"]) == expected and m["model"]["steps"] == train_steps:
            kept[name] = {"date": old["date"], "load_average": old["load_average"], **m}
            print(f"keeping model {name} from the run of {kept[name]['date']} (measured the same way)")
        else:
            print(f"dropping model {name} of the earlier run: it was measured differently")
    return kept


if __name__ == "__main__":
    main()
