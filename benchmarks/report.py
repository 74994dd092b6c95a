"""Write BENCHMARKS.md from the JSON files in benchmarks/results/ (nothing typed by hand).

    python benchmarks/report.py
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def stamp(r: dict) -> str:
    return f"*{r['date']} · {r['machine']} · torch {r['torch']}, {r['torch_threads']} threads*"


def section_demo(r: dict) -> list[str]:
    return [
        "## `genlab demo` (`python benchmarks/demo.py`)", "", stamp(r), "",
        "| wall time | training | sampling | conditional accuracy | judge accuracy on real digits | mean confidence |",
        "|---|---|---|---|---|---|",
        f"| {r['wall_seconds']:.0f} s | {r['train_seconds']:.0f} s ({r['config']['steps']} steps) | {r['sample_seconds']:.0f} s "
        f"| {r['conditional_accuracy']:.1%} of {r['samples_judged']} | {r['classifier_test_accuracy']:.1%} | {r['mean_confidence']:.2f} |",
        "", "Target: ≤ 180 s on 2 CPU cores with ≥ 90 % conditional accuracy.", "",
    ]  # fmt: skip


def section_unet(r: dict) -> list[str]:
    lines = [
        "## U-Net throughput (`python benchmarks/unet_throughput.py`)", "", stamp(r), "",
        f"fp32 matmul yardstick measured in the same run: {r['matmul_gflops']:.0f} GFLOP/s. "
        f"Training batch {r['batch']}, AdamW; sampling batch {r['sample_batch']}, DDIM 50 steps.", "",
        "| model | params | GFLOP/img (fwd) | train img/s | train GFLOP/s | sample img/s | 1000 samples | vs diffusers (train / sample) |",
        "|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for row in r["rows"]:
        ratio = f"×{row['train_speedup_vs_diffusers']:.2f} / ×{row['sample_speedup_vs_diffusers']:.2f}" if "train_speedup_vs_diffusers" in row else "—"
        lines.append(
            f"| {row['model']} | {row['params'] / 1e6:.2f} M | {row['forward_gflop_per_image']:.3f} | {row['train_images_per_s']:.0f} "
            f"| {row['train_gflops']:.0f} | {row['sample_images_per_s_ddim50']:.1f} | {row['seconds_per_1000_samples']:.0f} s | {ratio} |"
        )
    return lines + [""]


def section_mnist(r: dict) -> list[str]:
    return [
        '## "MNIST in 5 minutes" (`GENLAB_DATA=../shared/data/mnist python benchmarks/mnist_5min.py`)', "", stamp(r), "",
        f"Trained on {r['train_images']} images of the MNIST {r['split']} split for {r['train_seconds']:.0f} s "
        f"({r['steps']} steps × {r['batch']}, {r['train_images_per_s']:.0f} images/s, {r['params'] / 1e6:.2f} M parameters); "
        f"sampled {r['samples']} images with DDIM {r['sampling_steps']} steps, guidance w = {r['guidance']} in {r['sample_seconds']:.0f} s.", "",
        f"- samples read as the digit asked for: **{r['sample_accuracy']:.1%}** (mean confidence {r['sample_confidence']:.2f})",
        f"- the judge (a CNN trained on held-out real images): {r['judge_accuracy_real']:.1%} on real test images (mean confidence {r['judge_confidence_real']:.2f})",
        "", f"![samples]({Path(r['grid']).relative_to('benchmarks') if r['grid'].startswith('benchmarks') else r['grid']})", "",
    ]  # fmt: skip


def section_em(r: dict) -> list[str]:
    lines = [
        "## EM for Gaussian mixtures vs scikit-learn (`python benchmarks/em_vs_sklearn.py`)", "", stamp(r), "",
        f"Same start, tol, reg_covar and max_iter for both; best of {r['repeats']} fits; BLAS threads limit: {r['threads_limit'] or 'default'}.", "",
        "| case | K | iterations (genlab/sklearn) | genlab | scikit-learn | time ratio | mean log-lik genlab | scikit-learn |",
        "|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for c in r["results"]:
        lines.append(f"| {c['case']} | {c['k']} | {c['genlab_n_iter']}/{c['sklearn_n_iter']} | {c['genlab_s']:.4f} s | {c['sklearn_s']:.4f} s "
                     f"| {c['ratio_genlab_over_sklearn']:.2f} | {c['genlab_mean_loglik']:.8f} | {c['sklearn_mean_loglik']:.8f} |")
    return lines + [""]


def section_vae(r: dict) -> list[str]:
    lines = [
        "## VAE on MNIST (`GENLAB_DATA=../shared/data/mnist python benchmarks/vae_mnist.py`)", "", stamp(r), "",
        r["data"] + ".", f"bits/dim = {r['conventions']['bits_per_dim']}.", "",
        "| model | latent | steps | held-out ELBO | bits/dim | importance-sampled log p(x) | training | images/s |",
        "|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for run in r["runs"]:
        iw = next(v for k, v in run.items() if k.startswith("iw") and k.endswith("_log_px_nats"))
        lines.append(f"| {run['kind']} | {run['latent_dim']} | {run['steps']} | {run['elbo_nats']:.2f} nats | {run['bits_per_dim']:.4f} "
                     f"| {iw:.2f} nats | {run['train_seconds']:.1f} s | {run['train_images_per_second']:.0f} |")
    return lines + [""]


def section_generic(name: str, r: dict) -> list[str]:
    body = {k: v for k, v in r.items() if k not in ("date", "machine", "python", "torch", "numpy", "torch_threads", "gpu")}
    return [f"## {name}", "", stamp(r), "", "```json", json.dumps(body, indent=2, ensure_ascii=False), "```", ""]


def main() -> None:
    out = ["# Benchmarks", "", "Generated by `python benchmarks/report.py` from `benchmarks/results/*.json`; "
           "each figure was measured by the script named in its heading, on the machine and date shown.", ""]  # fmt: skip
    known = {"demo": section_demo, "unet_throughput": section_unet, "mnist_5min": section_mnist,
             "em_vs_sklearn": section_em, "vae_mnist": section_vae}
    for name, fn in known.items():
        if (r := load(name)) is not None:
            out += fn(r)
    for path in sorted(RESULTS.glob("*.json")):
        if path.stem not in known:
            out += section_generic(path.stem, json.loads(path.read_text()))
    target = HERE.parent / "BENCHMARKS.md"
    target.write_text("\n".join(out))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
