"""Quality per step on MNIST: one- and few-step generators against the diffusion model they compete with.

    GENLAB_DATA=../shared/data/mnist python benchmarks/quality_per_step.py [--n 2000] [--work outputs/bench_qps]
    python benchmarks/quality_per_step.py --quick      # a smoke run: tiny models, N = 200, nothing saved

Models (all unconditional, the course U-Net, batch 128, trained on
``genlab.metrics.generator_training_set`` so no model sees a reference image):

- ``diffusion``: ε-prediction, linear β, T = 1000 (the course default), ``--train-steps`` steps;
  sampled with DPM-Solver++(2M) (genlab's best few-step diffusion sampler, benchmarks/samplers_mnist.py)
  and with DDIM (50 steps: the reference the aim is stated against).
- ``flow``: flow matching on the straight path (rectified flow, velocity prediction), the same
  steps; sampled with flow-euler and flow-rk4.
- ``reflow``: its 2-rectified flow (``genlab.flow.reflow``): ``--reflow-pairs`` (noise, sample)
  pairs drawn with flow-rk4, then ``--reflow-steps`` steps from the flow's weights; flow-euler.
- ``cd``: consistency distillation from ``diffusion`` (``genlab.consistency_pipeline``, Heun teacher
  steps on its grid), ``--cd-steps`` steps; one- and multistep consistency sampling.
- ``ct``: consistency training without a teacher (iCT recipe), ``--ct-steps`` steps.

Every row: FID (N = ``--n`` samples against N real held-out images, genlab's MNIST features), NFE
(network calls per sample), wall time for the N samples. Training: wall and process-CPU seconds of
each model (reflow: pairs + training; CD: its own training, the teacher's is the diffusion row's).
Trained models are kept in ``--work`` and reused by a later run with the same settings, so the
study can be extended or rerun without retraining. Aim (issue 13): a one-step generator (CM or
2-rectified flow) whose FID is within 2× that of the 50-step diffusion sampler.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import feature_network_or_exit, header, save  # noqa: E402

from genlab.metrics import evaluate, generator_training_set  # noqa: E402
from genlab.pipeline import DiffusionSpec, TrainOptions, flow_process, generate, load_diffusion, train_diffusion  # noqa: E402
from genlab.train.checkpoint import has_checkpoint, read_config  # noqa: E402
from genlab.viz import save_grid  # noqa: E402


def timed(fn):
    """(result, wall seconds, process CPU seconds) of fn()."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def finished(run: Path, steps: int) -> bool:
    return has_checkpoint(run) and read_config(run).get("step") == steps and (run / "timing.json").is_file()


def cached_training(run: Path, steps: int, train_fn) -> dict:
    """Train with ``train_fn(resume)`` unless ``run`` already holds the finished run; its timing either way."""
    if finished(run, steps):
        print(f"  reusing {run}", flush=True)
        return json.loads((run / "timing.json").read_text())
    resume = has_checkpoint(run)
    _, wall, cpu = timed(lambda: train_fn(resume))
    timing = {"train_wall_s": wall, "train_cpu_s": cpu, "resumed": resume}
    (run / "timing.json").write_text(json.dumps(timing) + "\n")
    return timing


def score(samples, n, net) -> dict:
    ev = evaluate(samples, "mnist", n=n, net=net, metrics=("fid",))
    return {"FID": ev["FID"].value, "describe": ev["FID"].describe()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=2000, help="samples per row, and real reference images (default: 2000)")
    p.add_argument("--train-steps", type=int, default=1000, help="diffusion and flow-matching training steps")
    p.add_argument("--reflow-pairs", type=int, default=3000)
    p.add_argument("--reflow-pair-steps", type=int, default=6, help="flow-rk4 steps per reflow pair")
    p.add_argument("--reflow-steps", type=int, default=800)
    p.add_argument("--cd-steps", type=int, default=800)
    p.add_argument("--ct-steps", type=int, default=1200)
    p.add_argument("--nfe", default="1,2,4,10", help="NFE budgets of the few-step rows")
    p.add_argument("--rk4-steps", default="1,2,3", help="flow-rk4 steps (4k − 1 calls each)")
    p.add_argument("--models", default="diffusion,flow,reflow,cd,ct")
    p.add_argument("--work", type=Path, default=Path("outputs/bench_qps"), help="where trained models are kept and reused")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny models and N, nothing saved")
    args = p.parse_args()
    if args.quick:
        args.n, args.train_steps, args.reflow_pairs, args.reflow_steps, args.cd_steps, args.ct_steps = 200, 20, 64, 10, 10, 10
        args.work = args.work.with_name(args.work.name + "_quick")
    nfes = [int(v) for v in args.nfe.split(",")]
    models = args.models.split(",")
    info = header("Quality per step on MNIST: consistency models, rectified flow, flow matching, diffusion")
    net = feature_network_or_exit()
    images, _ = generator_training_set(net, args.n)
    data = (images,)
    unet = {"base_channels": 8, "channel_mults": (1, 2, 2)} if args.quick else {}
    base = TrainOptions(steps=args.train_steps, batch_size=128, unet=unet, ckpt_every=500)
    out = {"machine": info, "n": args.n, "train_images": len(images), "settings": vars(args) | {"work": str(args.work)},
           "models": {}, "rows": []}  # fmt: skip

    def row(model_name, method, steps, nfe, fn):
        samples, wall, _ = timed(fn)
        s = score(samples, args.n, net)
        print(f"  {model_name:9s} {method:16s} steps {steps:3d}  NFE {nfe:3d}  FID {s['FID']:9.2f}  {wall:6.1f} s", flush=True)
        out["rows"].append({"model": model_name, "method": method, "steps": steps, "nfe": nfe, "FID": s["FID"],
                            "sample_s": wall, "describe": s["describe"]})  # fmt: skip
        if not args.quick and (nfe == 1 or (method == "ddim" and steps == 50)):
            from common import RESULTS

            name = f"quality_per_step_{model_name}_{method}_{nfe}.png"
            RESULTS.mkdir(exist_ok=True)
            save_grid(samples[:64], RESULTS / name, nrow=8, scale=2)
            out["rows"][-1]["grid"] = name

    # --- diffusion (ε, linear β): the reference and the CD teacher ---------------------------------
    diff_run = args.work / "diffusion"
    if "diffusion" in models or "cd" in models:
        print("diffusion (ε-prediction, linear β)", flush=True)
        spec = DiffusionSpec(dataset="mnist", shape=(1, 28, 28))
        timing = cached_training(diff_run, args.train_steps,
                                 lambda resume: train_diffusion(spec, data, base, out_dir=diff_run, resume=resume))  # fmt: skip
        out["models"]["diffusion"] = timing | {"steps": args.train_steps}
    if "diffusion" in models:
        model, spec = load_diffusion(diff_run)
        for k in nfes:
            row("diffusion", "dpmpp-2m", k, k, lambda: generate(model, spec, args.n, sampler="dpmpp-2m", steps=k))
        row("diffusion", "ddim", 50, 50, lambda: generate(model, spec, args.n, sampler="ddim", steps=50))

    # --- flow matching and its reflow ----------------------------------------------------------------
    flow_run = args.work / "flow"
    if any(m in models for m in ("flow", "reflow")):
        print("flow matching (straight path, velocity)", flush=True)
        fspec = DiffusionSpec(dataset="mnist", shape=(1, 28, 28), schedule="rectified_flow", prediction="velocity",
                              process=flow_process("ot").config())  # fmt: skip
        timing = cached_training(flow_run, args.train_steps,
                                 lambda resume: train_diffusion(fspec, data, base, out_dir=flow_run, resume=resume))  # fmt: skip
        out["models"]["flow"] = timing | {"steps": args.train_steps}
    if "flow" in models:
        model, spec = load_diffusion(flow_run)
        for k in nfes:
            row("flow", "flow-euler", k, k, lambda: generate(model, spec, args.n, sampler="flow-euler", steps=k))
        for k in [int(v) for v in args.rk4_steps.split(",")]:  # RK4: 4k − 1 calls in k steps
            row("flow", "flow-rk4", k, 4 * k - 1, lambda: generate(model, spec, args.n, sampler="flow-rk4", steps=k))
    if "reflow" in models:
        from genlab.flow.reflow import train_reflow

        print("2-rectified flow (reflow)", flush=True)
        teacher, fspec = load_diffusion(flow_run)
        re_run = args.work / "reflow"
        ropts = TrainOptions(steps=args.reflow_steps, batch_size=128, lr=1e-3, unet=unet, ckpt_every=500)
        timing = cached_training(re_run, args.reflow_steps, lambda resume: train_reflow(
            teacher, fspec, ropts, pairs=args.reflow_pairs, pair_steps=args.reflow_pair_steps, out_dir=re_run, resume=resume,
            teacher_name=str(flow_run)))  # fmt: skip
        out["models"]["reflow"] = timing | {"steps": args.reflow_steps, "pairs": args.reflow_pairs, "pair_sampler": "flow-rk4",
                                            "pair_steps": args.reflow_pair_steps}  # fmt: skip
        model, spec = load_diffusion(re_run)
        for k in nfes:
            row("reflow", "flow-euler", k, k, lambda: generate(model, spec, args.n, sampler="flow-euler", steps=k))

    # --- consistency models --------------------------------------------------------------------------
    if "cd" in models or "ct" in models:
        from genlab.consistency_pipeline import (
            ConsistencyOptions,
            ConsistencySpec,
            generate_consistency,
            load_consistency,
            train_consistency,
            train_consistency_distillation,
        )

        for name, steps in (("cd", args.cd_steps), ("ct", args.ct_steps)):
            if name not in models:
                continue
            print(f"consistency {'distillation' if name == 'cd' else 'training'}", flush=True)
            run = args.work / name
            copts = ConsistencyOptions(steps=steps, batch_size=128, unet=unet, ckpt_every=500)
            if name == "cd":
                train_fn = lambda resume: train_consistency_distillation(diff_run, data, copts, out_dir=run, resume=resume)  # noqa: E731
            else:
                cspec = ConsistencySpec(dataset="mnist", shape=(1, 28, 28))
                train_fn = lambda resume: train_consistency(cspec, data, copts, out_dir=run, resume=resume)  # noqa: E731
            out["models"][name] = cached_training(run, steps, train_fn) | {"steps": steps}
            model, cspec = load_consistency(run)
            for k in [k for k in nfes if k <= 4]:
                row(name, "consistency", k, k, lambda: generate_consistency(model, cspec, args.n, steps=k))

    # --- the aim and the outputs ---------------------------------------------------------------------
    from common import RESULTS

    earlier = RESULTS / "quality_per_step.json"
    if not args.quick and earlier.is_file():  # keep the models this run did not measure (each row keeps its date)
        old = json.loads(earlier.read_text())
        if old.get("n") == args.n:
            measured = {r["model"] for r in out["rows"]}  # a CD run reuses the diffusion teacher without measuring it
            out["rows"] = [r for r in old["rows"] if r["model"] not in measured] + out["rows"]
            out["models"] = old["models"] | {k: v for k, v in out["models"].items() if k in measured or k not in old["models"]}
    for r in out["rows"]:
        r.setdefault("date", info["date"])
    for m in out["models"].values():
        m.setdefault("date", info["date"])
    ref = next((r["FID"] for r in out["rows"] if r["model"] == "diffusion" and r["method"] == "ddim"), None)
    one_step = [r for r in out["rows"] if r["nfe"] == 1 and r["model"] in ("cd", "ct", "reflow")]
    if ref is not None and one_step:
        best = min(one_step, key=lambda r: r["FID"])
        out["aim"] = {"reference_fid": ref, "best_one_step": {k: best[k] for k in ("model", "FID")}, "ratio": best["FID"] / ref,
                      "met": best["FID"] <= 2 * ref}  # fmt: skip
        print(f"aim: best one-step {best['model']} FID {best['FID']:.1f} = {best['FID'] / ref:.2f} × DDIM-50's {ref:.1f} "
              f"({'met' if out['aim']['met'] else 'not met'}: within 2×)")  # fmt: skip
    if args.quick:
        print("quick run: nothing saved")
        return
    save("quality_per_step", out)


if __name__ == "__main__":
    main()
