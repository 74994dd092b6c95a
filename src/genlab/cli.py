"""The ``genlab`` command: ``demo``, ``train``, ``train-classifier``, ``sample`` and ``eval``.

Every problem the user can fix (unknown data set, missing or corrupt checkpoint, options that do
not fit the model…) is printed as one line ``genlab: error: …`` with exit code 2, no traceback.
"""

from __future__ import annotations

import argparse
import errno
import math
import sys
from pathlib import Path

from genlab.errors import GenlabError

TOY_SHAPES = ("gaussian_mixture", "moons", "swiss_roll", "rings", "grid")  # genlab.data.TOY2D, without importing it


def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def positive_int(text: str) -> int:
    value = whole_number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = finite_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {value}")
    return value


def unit_float(text: str) -> float:
    value = finite_float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def int_tuple(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers like 1,2,2; got {text!r}") from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    from genlab.diffusion.grids import GRIDS
    from genlab.gan_pipeline import GAN_MODELS
    from genlab.pipeline import DATASETS, FLOW_PATHS, NETWORKS, SAMPLERS

    parser = argparse.ArgumentParser(prog="genlab", description="Train, sample and demo small diffusion models on a CPU.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{demo,train,reflow,train-classifier,sample,eval}")

    demo = sub.add_parser("demo", help="train a class-conditional diffusion model on 8×8 digits in a few CPU minutes")
    demo.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder (default: outputs/demo)")
    demo.add_argument("--steps", type=positive_int, default=None, help="training steps (default: the demo's)")
    demo.add_argument("--seed", type=non_negative_int, default=0)
    demo.add_argument("--smoke", action="store_true", help="a seconds-long run that only checks the machinery")

    train = sub.add_parser("train", help="train a diffusion model or a GAN on a data set")
    train.add_argument("--dataset", choices=DATASETS, required=True)
    train.add_argument("--model", choices=("diffusion", "consistency", *GAN_MODELS), default="diffusion",
                       help="diffusion (default); consistency (a one-step generator: distilled from --teacher, or trained from data alone); "
                            "or a GAN for 28×28/32×32 images: dcgan, wgan-gp, sngan, stylegan")
    train.add_argument("--teacher", type=Path, default=None, help="with --model consistency: the diffusion run to distil (consistency distillation); "
                       "without it, consistency training from the data")
    train.add_argument("--conditional", action="store_true", help="class-conditional, with condition dropout for classifier-free guidance")
    train.add_argument("--steps", type=positive_int, default=2000, help="optimiser steps (GANs: generator updates; default: 2000)")
    train.add_argument("--batch-size", type=positive_int, default=None, help="examples per step (default: 128; GANs: 64 real images per critic update)")
    train.add_argument("--lr", type=positive_float, default=None, help="peak learning rate (default: 2e-3; GANs use their recipe's)")
    train.add_argument("--width", type=positive_int, default=None, help="GAN network width (default: 32 for DCGANs, 16 for stylegan)")
    train.add_argument("--seed", type=non_negative_int, default=0, help="seed for weights, batches, noise (and the toy data)")
    train.add_argument("--out", type=Path, default=None, help="run folder (default: outputs/<dataset>)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint (same options; --steps may grow)")
    train.add_argument("--overwrite", action="store_true", help="replace a run that already exists in --out")
    train.add_argument("--schedule", default="linear", help="β schedule: linear, cosine, quadratic, sigmoid (default: linear)")
    train.add_argument("--prediction", choices=("epsilon", "x0", "v"), default="epsilon")
    train.add_argument("--flow", choices=FLOW_PATHS, default=None,
                       help="flow matching instead of a β schedule: the network predicts the velocity of the path; ot = the straight "
                            "path of rectified flow (x_t = (1−t) x₀ + t ε), vp = the cosine variance-preserving path")
    train.add_argument("--network", choices=NETWORKS, default="unet", help="denoiser network: the course U-Net or a Diffusion Transformer (dit)")
    train.add_argument("--patch-size", type=positive_int, default=None, help="DiT patch size (default 4; 2 for images of 16×16 or less)")
    train.add_argument("--hidden-size", type=positive_int, default=None, help="DiT token width (default 128)")
    train.add_argument("--depth", type=positive_int, default=None, help="DiT transformer blocks (default 4)")
    train.add_argument("--min-snr-gamma", type=positive_float, default=None, help="Min-SNR-γ loss weighting (e.g. 5)")
    train.add_argument("--learned-variance", action="store_true",
                       help="also learn the reverse variance, with the hybrid loss (Nichol & Dhariwal 2021); DDPM sampling then uses it")
    train.add_argument("--base-channels", type=positive_int, default=None, help="U-Net width at full resolution")
    train.add_argument("--channel-mults", type=int_tuple, default=None, help="U-Net levels, e.g. 1,2,2")
    train.add_argument("--latent", action="store_true", help="latent diffusion: train an autoencoder first (in OUT/autoencoder), then the diffusion model on its latents")
    train.add_argument("--ae-steps", type=positive_int, default=2000, help="autoencoder training steps with --latent (default: 2000)")
    train.add_argument("--text", action="store_true", help="text-to-image: captions measured on each image (class, thickness, slant, size), "
                       "a small text encoder and cross-attention; sample with --prompt")
    train.add_argument("--caption-langs", choices=("ja", "en", "ja,en"), default="ja,en", help="languages of the training captions with --text (default: ja,en)")
    train.add_argument("--toy", choices=TOY_SHAPES, default="moons", help="toy 2-D distribution for --dataset toy2d")
    train.add_argument("--ckpt-every", type=positive_int, default=500, help="checkpoint interval in steps (default: 500)")
    train.add_argument("--sample-every", type=non_negative_int, default=0, help="write a sample grid every N steps (0: only at the end)")

    rf = sub.add_parser("reflow", help="straighten a flow-matching model (--flow ot): train its 2-rectified flow on its own (noise, sample) pairs")
    rf.add_argument("--ckpt", type=Path, required=True, help="the flow-matching run to straighten (trained with --flow ot)")
    rf.add_argument("--out", type=Path, default=None, help="run folder of the new model (default: <ckpt>-reflow)")
    rf.add_argument("--pairs", type=positive_int, default=4000, help="(noise, sample) pairs drawn from the model (default: 4000)")
    rf.add_argument("--pair-sampler", choices=SAMPLERS, default="flow-rk4", help="ODE solver that draws the pairs (default: flow-rk4)")
    rf.add_argument("--pair-steps", type=positive_int, default=10, help="solver steps per pair (default: 10)")
    rf.add_argument("--steps", type=positive_int, default=1000, help="optimiser steps of the new model (default: 1000)")
    rf.add_argument("--batch-size", type=positive_int, default=128)
    rf.add_argument("--lr", type=positive_float, default=1e-3, help="peak learning rate (default: 1e-3; it starts from trained weights)")
    rf.add_argument("--seed", type=non_negative_int, default=0)
    rf.add_argument("--ckpt-every", type=positive_int, default=500)
    rf.add_argument("--resume", action="store_true", help="continue the reflow run in --out (its pairs are reused)")
    rf.add_argument("--overwrite", action="store_true", help="replace a run that already exists in --out")

    tc = sub.add_parser("train-classifier", help="train a noise-aware classifier p(y | x_t) for classifier guidance of a diffusion checkpoint")
    tc.add_argument("--ckpt", type=Path, required=True, help="the diffusion run (or checkpoint) to guide: its data set and noise process are used")
    tc.add_argument("--out", type=Path, default=None, help="classifier run folder (default: <ckpt>/classifier)")
    tc.add_argument("--steps", type=positive_int, default=1500, help="optimiser steps (default: 1500)")
    tc.add_argument("--batch-size", type=positive_int, default=128)
    tc.add_argument("--lr", type=positive_float, default=2e-3)
    tc.add_argument("--seed", type=non_negative_int, default=0)
    tc.add_argument("--resume", action="store_true", help="continue the classifier run in --out")
    tc.add_argument("--overwrite", action="store_true", help="replace a classifier run that already exists in --out")

    sample = sub.add_parser("sample", help="sample from a trained checkpoint (diffusion model or GAN)")
    sample.add_argument("--ckpt", type=Path, required=True, help="run folder or checkpoint folder")
    sample.add_argument("--n", type=positive_int, default=64, help="number of samples (default: 64)")
    sample.add_argument("--sampler", choices=SAMPLERS, default=None, help="diffusion sampler (default: ddim)")
    sample.add_argument("--steps", type=positive_int, default=None, help="sampling steps (default: 50; heun makes 2 calls per step, ode chooses its own; a consistency model: 1)")
    sample.add_argument("--grid", choices=GRIDS, default=None, help="sampling grid: karras (default for euler/heun/dpmpp-2m/unipc), log_snr, "
                        "or timesteps (trailing; the default for ddpm/ddim and for zero-terminal-SNR models)")
    sample.add_argument("--eta", type=unit_float, default=0.0, help="DDIM η in [0, 1]: 0 deterministic, 1 DDPM-like")
    sample.add_argument("--class", dest="label", type=non_negative_int, default=None, help="generate this class (conditional models; default: one column per class)")
    sample.add_argument("--guidance", type=finite_float, default=None,
                        help="classifier-free guidance scale w (conditional models; default 1 = none, 3 with --prompt)")
    sample.add_argument("--prompt", action="append", default=None, help='what to draw, for a model trained with --text, e.g. "太い 7" or '
                        '"thin left-slanted 3"; repeat for several prompts (one column each)')
    sample.add_argument("--classifier", type=Path, default=None, help="guide with this noise-aware classifier (from `genlab train-classifier`); "
                        "on a class-conditional model it adds to CFG, and --guidance 0 guides the model's unconditional mode")
    sample.add_argument("--classifier-scale", type=finite_float, default=None, help="classifier guidance scale s (default 1 with --classifier; 0 = none)")
    sample.add_argument("--seed", type=non_negative_int, default=0, help="sample i depends on (seed, i) only")
    sample.add_argument("--batch-size", type=positive_int, default=64, help="samples per forward pass (default: 64); does not change the samples")
    sample.add_argument("--out", type=Path, default=Path("samples.png"), help="output image, .png or .jpg (default: samples.png)")
    sample.add_argument("--raw-weights", action="store_true", help="use the raw weights instead of the EMA")
    sample.add_argument("--truncation", type=unit_float, default=1.0, help="StyleGAN truncation ψ in [0, 1] (1 = none; lower: more typical, less diverse)")
    ev = sub.add_parser("eval", help="score a checkpoint's samples, or a file of images, with FID, KID, IS, precision/recall")
    src = ev.add_mutually_exclusive_group(required=True)
    src.add_argument("--ckpt", type=Path, help="sample this checkpoint and score the samples")
    src.add_argument("--samples", type=Path, help="score these images: .npy/.npz/.pt/.safetensors, N×C×H×W in [-1, 1]")
    ev.add_argument("--dataset", default=None, help="the real data to compare with (default: the checkpoint's): digits, mnist, fashion_mnist, cifar10")
    ev.add_argument("--n", type=positive_int, default=2000, help="samples to score, and real reference images (default: 2000)")
    ev.add_argument("--sampler", choices=SAMPLERS, default=None, help="diffusion sampler (default: ddim)")
    ev.add_argument("--steps", type=positive_int, default=None, help="sampling steps (default: 50; a consistency model: 1)")
    ev.add_argument("--grid", choices=GRIDS, default=None, help="sampling grid (default: the sampler's; see `genlab sample --help`)")
    ev.add_argument("--guidance", type=finite_float, default=1.0, help="classifier-free guidance scale w (conditional models)")
    ev.add_argument("--classifier", type=Path, default=None, help="guide with this noise-aware classifier (from `genlab train-classifier`)")
    ev.add_argument("--classifier-scale", type=finite_float, default=None, help="classifier guidance scale s (default 1 with --classifier)")
    ev.add_argument("--seed", type=non_negative_int, default=0)
    ev.add_argument("--batch-size", type=positive_int, default=64, help="samples per forward pass (default: 64)")
    ev.add_argument("--truncation", type=unit_float, default=1.0, help="StyleGAN truncation ψ (GAN checkpoints; 1 = none)")
    ev.add_argument("--out", type=Path, default=None, help="JSON report (default: eval.json next to the checkpoint or the samples file)")
    return parser


def cmd_eval(args) -> None:
    import json
    import time

    import torch

    from genlab.metrics import evaluate
    from genlab.pipeline import generate, load_diffusion, load_samples_file

    labels, t0 = None, time.perf_counter()
    if args.samples is not None and (args.classifier is not None or args.classifier_scale is not None):
        raise GenlabError("--classifier guides sampling; it does nothing with --samples (drop it, or use --ckpt)")
    gan = args.ckpt is not None and is_gan(args.ckpt)
    cm = args.ckpt is not None and not gan and is_consistency(args.ckpt)
    if cm:
        from genlab.consistency_pipeline import generate_consistency, load_consistency

        refuse_sampler_options(args, "a consistency model")
        model, cspec = load_consistency(args.ckpt)
        dataset = args.dataset or cspec.dataset
        if dataset != cspec.dataset:
            raise GenlabError(f"checkpoint at {args.ckpt} was trained on {cspec.dataset}, not {dataset}: drop --dataset or pass --dataset {cspec.dataset}")
        if len(cspec.shape) != 3:
            raise GenlabError(f"checkpoint at {args.ckpt} models {cspec.dataset} points, not images: there is nothing to score with image metrics")
        steps = args.steps or 1
        labels = torch_labels(args.n, cspec.num_classes)
        print(f"sampling {args.n} images from the consistency model at {args.ckpt} ({steps} step{'s' if steps > 1 else ''})", flush=True)
        samples = generate_consistency(model, cspec, args.n, steps=steps, labels=labels, seed=args.seed, batch_size=args.batch_size, progress=True)
        source, default_out = str(args.ckpt), args.ckpt / "eval.json"
    elif gan:
        from genlab.gan_pipeline import gan_generate, load_gan

        refuse_diffusion_options(args)
        generator, gspec = load_gan(args.ckpt)
        dataset = args.dataset or gspec.dataset
        if dataset != gspec.dataset:
            raise GenlabError(f"checkpoint at {args.ckpt} was trained on {gspec.dataset}, not {dataset}: drop --dataset or pass --dataset {gspec.dataset}")
        print(f"sampling {args.n} images from the {gspec.model} generator at {args.ckpt} (truncation ψ = {args.truncation})", flush=True)
        samples = gan_generate(generator, args.n, seed=args.seed, batch_size=args.batch_size, psi=args.truncation)
        source, default_out = str(args.ckpt), args.ckpt / "eval.json"
    elif args.ckpt is not None:
        args.sampler, args.steps = args.sampler or "ddim", args.steps or 50
        model, spec = load_diffusion(args.ckpt)
        classifier, scale = guiding_classifier(args, spec)
        if len(spec.shape) != 3:
            raise GenlabError(f"checkpoint at {args.ckpt} models {spec.dataset} points, not images: there is nothing to score with image metrics")
        dataset = args.dataset or spec.dataset
        if dataset != spec.dataset:
            raise GenlabError(f"checkpoint at {args.ckpt} was trained on {spec.dataset}, not {dataset}: drop --dataset or pass --dataset {spec.dataset}")
        classes = spec.num_classes or (classifier.config.num_classes if classifier is not None else 0)
        prompts = None
        if spec.text is not None:  # prompted by the class names alone, one class after another
            from genlab.text_pipeline import text_scheme

            names = text_scheme(spec.text).class_names
            classes, prompts = len(names), [names[i % len(names)] for i in range(args.n)]
        if classes:
            labels = torch.arange(args.n) % classes
        guided = f", classifier scale {scale}" if classifier is not None else ""
        print(f"sampling {args.n} images from {args.ckpt} ({args.sampler}, {args.steps} steps, guidance {args.guidance}{guided})", flush=True)
        stats = {}
        samples = generate(model, spec, args.n, sampler=args.sampler, steps=args.steps, labels=labels if prompts is None else None, prompts=prompts,
                           guidance=args.guidance, seed=args.seed, batch_size=args.batch_size, progress=True,
                           classifier=classifier, classifier_scale=scale, grid=args.grid, stats=stats)  # fmt: skip
        source, default_out = str(args.ckpt), args.ckpt / "eval.json"
    else:
        if args.dataset is None:
            raise GenlabError("--samples needs --dataset (the real data to compare with), e.g. --dataset mnist")
        dataset, samples = args.dataset, load_samples_file(args.samples)
        source, default_out = str(args.samples), args.samples.with_suffix(".eval.json")
    t_sample = time.perf_counter() - t0
    result = evaluate(samples, dataset, n=min(args.n, len(samples)), labels=labels, progress=True)
    report = {"source": source, "dataset": dataset, "sampling_seconds": t_sample, **result.to_dict()}
    if gan:
        report.update(model=gspec.model, truncation=args.truncation, seed=args.seed)
    elif cm:
        report.update(model=f"consistency ({cspec.method})", steps=steps, nfe=steps, seed=args.seed)
    elif args.ckpt is not None:
        report.update(sampler=args.sampler, steps=args.steps, grid=stats["grid"], nfe=stats["nfe"], guidance=args.guidance, seed=args.seed,
                      classifier=str(args.classifier) if args.classifier else None, classifier_scale=scale)  # fmt: skip
    out = args.out or default_out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    width = max(len(name) for name in result.results)
    print(f"\n{'metric':<{width}}  value")
    for name, r in result.results.items():
        print(f"{name:<{width}}  {r.value:.4g}" + (f" ± {r.std:.2g}" if r.std is not None else ""))
    print("\n" + result.describe())
    print(f"wrote {out}")


def cmd_demo(args) -> None:
    from dataclasses import replace

    from genlab.demo import SMOKE, DemoConfig, run_demo

    cfg = SMOKE if args.smoke else DemoConfig()
    cfg = replace(cfg, seed=args.seed, **({"steps": args.steps} if args.steps else {}))
    run_demo(args.out, cfg)


def cmd_train(args) -> None:
    if args.model == "consistency":
        return cmd_train_consistency(args)
    if args.teacher is not None:
        raise GenlabError("--teacher names the diffusion model a consistency model distils: add --model consistency")
    if args.model != "diffusion":
        return cmd_train_gan(args)
    if args.width is not None:
        raise GenlabError("--width sets a GAN's width; for a diffusion U-Net use --base-channels")
    args.batch_size, args.lr = args.batch_size or 128, args.lr or 2e-3
    import torch

    from genlab.diffusion import SCHEDULES
    from genlab.pipeline import DiffusionSpec, TrainOptions, flow_process, generate, load_training_data, save_samples, train_diffusion

    if args.schedule not in SCHEDULES:
        raise GenlabError(f"unknown schedule {args.schedule!r}; choose one of: {', '.join(SCHEDULES)}")
    if args.flow and (args.prediction != "epsilon" or args.schedule != "linear"):
        raise GenlabError("--flow trains a velocity network on its own path: drop --prediction and --schedule")
    if args.flow and args.learned_variance:
        raise GenlabError("--learned-variance is for discrete β schedules; drop it or --flow")
    dit = {k: v for k, v in (("patch_size", args.patch_size), ("hidden_size", args.hidden_size), ("depth", args.depth)) if v}
    if dit and args.network != "dit":
        raise GenlabError("--patch-size/--hidden-size/--depth configure the Diffusion Transformer: add --network dit")
    if args.network == "dit" and (args.base_channels or args.channel_mults):
        raise GenlabError("--base-channels/--channel-mults configure the U-Net; with --network dit use --patch-size/--hidden-size/--depth")
    if args.network == "dit" and (args.dataset == "toy2d" or args.text or args.learned_variance):
        raise GenlabError("--network dit is for images (class-conditional or not); drop --text/--learned-variance, or use the U-Net")
    if args.dataset == "toy2d" and args.conditional:
        raise GenlabError("toy2d has no labels, so it cannot be trained --conditional; drop the flag")
    if args.dataset == "toy2d" and (args.base_channels or args.channel_mults):
        raise GenlabError("--base-channels/--channel-mults configure the U-Net; toy2d uses an MLP")
    if args.dataset == "cifar10":
        print("note: CIFAR-10 (50 000 RGB images, 3×32×32) is slow to train on a CPU: good samples need "
              "GPU-hours; on a CPU, use a small --steps to try the pipeline (a GPU is used automatically when present)", flush=True)
    if args.latent and args.dataset not in ("mnist", "fashion_mnist", "cifar10"):
        raise GenlabError(f"--latent is for 28×28 and 32×32 images (mnist, fashion_mnist, cifar10); {args.dataset} is too small to compress")
    if args.latent and args.learned_variance:
        raise GenlabError("--learned-variance needs pixel data (its bound ends in a discretised pixel decoder); drop it or --latent")
    if args.text and args.dataset not in ("digits", "mnist", "fashion_mnist"):
        raise GenlabError(f"--text captions are measured on grey images (digits, mnist, fashion_mnist); {args.dataset} has none to measure")
    if args.text and args.conditional:
        raise GenlabError("--text conditions the model on prompts that name the class already; drop --conditional")
    if args.text and args.learned_variance:
        raise GenlabError("--learned-variance is for unconditional models; drop it or --text")
    out = args.out or Path("outputs") / (f"{args.dataset}-latent" if args.latent else args.dataset)
    data = load_training_data(args.dataset, toy=args.toy, seed=args.seed)
    frozen, wrap, latent, text = None, (lambda model: model), None, None
    if args.text:  # captions are measured on the images, so before any encoding
        from genlab.text_pipeline import caption_ids, text_setup

        text = text_setup(data[0])
        ids, captions = caption_ids(text, data[0], data[1], langs=tuple(args.caption_langs.split(",")), seed=args.seed)
        data = (data[0], ids)
        print(f"captions for {len(captions)} images, e.g. " + ", ".join(f"“{c}”" for c in captions[:4]), flush=True)
    if args.latent:
        from genlab.latent_pipeline import AUTOENCODER_KEY, LatentDiffusionModel, encode_dataset, train_autoencoder

        print(f"stage 1: the autoencoder on {args.dataset} ({len(data[0])} images) → {out / 'autoencoder'}", flush=True)
        ae_run = train_autoencoder(data[0], dataset=args.dataset, steps=args.ae_steps, batch_size=args.batch_size, seed=args.seed,
                                   out_dir=out / "autoencoder", resume=args.resume, overwrite=args.overwrite)  # fmt: skip
        autoencoder = ae_run.model.eval()
        with torch.no_grad():
            recon = autoencoder.decode(autoencoder.encode(data[0][:512])[0])
        latents, scale = encode_dataset(autoencoder, data[0], seed=args.seed)
        print(f"autoencoder: {ae_run.step} steps, reconstruction MSE {float(((recon - data[0][:512]) ** 2).mean()):.4f} on 512 training images; "
              f"latents {tuple(latents.shape[1:])}, scale factor {scale:.4f}", flush=True)  # fmt: skip
        data = (latents, *data[1:])
        frozen, latent = {AUTOENCODER_KEY: autoencoder}, {"scale_factor": scale, "image_shape": list(autoencoder.config.image_shape)}
        wrap = lambda model: LatentDiffusionModel(model, autoencoder, scale)  # noqa: E731
    process = flow_process(args.flow) if args.flow else None
    spec = DiffusionSpec(
        dataset=args.dataset, shape=tuple(data[0].shape[1:]),
        num_classes=int(data[1].max()) + 1 if args.conditional else 0,
        schedule=process.kind if process else args.schedule, prediction="velocity" if process else args.prediction,
        process=process.config() if process else None, toy=args.toy if args.dataset == "toy2d" else None,
        clip=None if args.dataset == "toy2d" or args.latent else (-1.0, 1.0), learned_variance=args.learned_variance, latent=latent,
        text=text,
    )  # fmt: skip
    options = TrainOptions(
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed, min_snr_gamma=args.min_snr_gamma,
        ckpt_every=args.ckpt_every, sample_every=args.sample_every,
        unet={k: v for k, v in (("base_channels", args.base_channels), ("channel_mults", args.channel_mults)) if v},
        network=args.network, dit=dit,
    )  # fmt: skip
    n_show = 1000 if args.dataset == "toy2d" else 64
    labels = (lambda n: torch.arange(n) % spec.num_classes) if spec.num_classes else (lambda n: None)
    nrow = spec.num_classes or None
    show = {}
    if text is not None:  # one column per class, each prompted by its name alone, guided
        from genlab.text_pipeline import text_scheme

        names = text_scheme(text).class_names
        show, nrow = {"prompts": [names[i % len(names)] for i in range(n_show)], "guidance": 3.0}, len(names)

    def sample_fn(model, step):
        samples = generate(wrap(model), spec, n_show, steps=50, labels=labels(n_show), seed=args.seed, **show)
        save_samples(samples, spec, out / "samples" / f"step_{step:06d}.png", nrow=nrow)

    print(f"{'stage 2: ' if args.latent else ''}training on {args.dataset} ({len(data[0])} examples, shape {spec.shape}) → {out}", flush=True)
    resume = args.resume
    if args.latent and resume:  # a run stopped after stage 1 has no diffusion checkpoint yet: stage 2 starts afresh
        from genlab.train.checkpoint import has_checkpoint

        resume = has_checkpoint(out)
    result = train_diffusion(spec, data, options, out_dir=out, resume=resume, overwrite=args.overwrite,
                             sample_fn=sample_fn if args.sample_every else None, frozen=frozen)
    samples = generate(wrap(result.best_model.eval()), spec, n_show, steps=50, labels=labels(n_show), seed=args.seed, **show)
    path = save_samples(samples, spec, out / "samples.png", nrow=nrow)
    import matplotlib.pyplot as plt

    from genlab.viz import plot_losses

    ax = plot_losses(result.losses, title=f"training loss ({args.dataset})")
    ax.figure.savefig(out / "loss.png", dpi=120, bbox_inches="tight")
    plt.close(ax.figure)
    print(f"done: {result.step} steps, final loss {sum(result.losses[-50:]) / max(len(result.losses[-50:]), 1):.4f}; checkpoints in {out}, samples in {path}")


def cmd_train_consistency(args) -> None:
    from genlab.consistency_pipeline import (
        ConsistencyOptions,
        ConsistencySpec,
        generate_consistency,
        load_consistency,
        train_consistency,
        train_consistency_distillation,
    )
    from genlab.pipeline import load_diffusion, load_training_data, save_samples

    given = [flag for flag, on in (("--flow", args.flow), ("--network dit", args.network != "unet"), ("--latent", args.latent),
                                   ("--text", args.text), ("--learned-variance", args.learned_variance),
                                   ("--prediction", args.prediction != "epsilon"), ("--schedule", args.schedule != "linear"),
                                   ("--min-snr-gamma", args.min_snr_gamma is not None), ("--width", args.width is not None)) if on]  # fmt: skip
    if given:
        raise GenlabError(f"{', '.join(given)} configure{'s' if len(given) == 1 else ''} diffusion or GAN training, not a consistency model (drop it)")
    unet = {k: v for k, v in (("base_channels", args.base_channels), ("channel_mults", args.channel_mults)) if v}
    options = ConsistencyOptions(steps=args.steps, batch_size=args.batch_size or 128, lr=args.lr or 1e-3, seed=args.seed,
                                 ckpt_every=args.ckpt_every, sample_every=args.sample_every, unet=unet)  # fmt: skip
    method = "cd" if args.teacher is not None else "ct"
    out = args.out or Path("outputs") / f"{args.dataset}-{method}"
    if args.teacher is not None:
        _, tspec = load_diffusion(args.teacher)
        if tspec.dataset != args.dataset:
            raise GenlabError(f"the teacher at {args.teacher} generates {tspec.dataset}, not {args.dataset}: pass --dataset {tspec.dataset}")
        if args.conditional and not tspec.num_classes:
            raise GenlabError("the teacher is unconditional, so the student cannot be --conditional (drop it, or distil a conditional teacher)")
        print(f"consistency distillation of {args.teacher} on {args.dataset} → {out}", flush=True)
        train_consistency_distillation(args.teacher, None, options, out_dir=out, resume=args.resume, overwrite=args.overwrite)
    else:
        if args.dataset == "toy2d" and args.conditional:
            raise GenlabError("toy2d has no labels, so it cannot be trained --conditional; drop the flag")
        data = load_training_data(args.dataset, toy=args.toy, seed=args.seed)
        spec = ConsistencySpec(dataset=args.dataset, shape=tuple(data[0].shape[1:]),
                               num_classes=int(data[1].max()) + 1 if args.conditional else 0,
                               toy=args.toy if args.dataset == "toy2d" else None, clip=None if args.dataset == "toy2d" else (-1.0, 1.0))  # fmt: skip
        print(f"consistency training on {args.dataset} ({len(data[0])} examples) → {out}", flush=True)
        train_consistency(spec, data, options, out_dir=out, resume=args.resume, overwrite=args.overwrite)
    model, spec = load_consistency(out)
    n = 1000 if args.dataset == "toy2d" else 64
    labels = torch_labels(n, spec.num_classes)
    for steps in (1, 2):
        samples = generate_consistency(model, spec, n, steps=steps, labels=labels, seed=args.seed)
        save_samples(samples, spec, out / f"samples_{steps}step.png", nrow=spec.num_classes or None)
    print(f"done: one-step samples in {out / 'samples_1step.png'} (sample with `genlab sample --ckpt {out} --steps 1`)")


def torch_labels(n: int, classes: int):
    """One column per class (labels 0..K−1 cycled), or None for an unconditional model."""
    import torch

    return torch.arange(n) % classes if classes else None


def is_consistency(path: Path) -> bool:
    from genlab.consistency_pipeline import is_consistency_checkpoint

    return is_consistency_checkpoint(path)


def refuse_options(args, holds: str, steers: str, allowed: tuple[str, ...]) -> None:
    """Refuse the sampling options a checkpoint of another kind cannot use: one line naming them."""
    flags = (("--sampler", args.sampler is not None), ("--steps", args.steps is not None), ("--grid", args.grid is not None),
             ("--eta", getattr(args, "eta", 0.0) != 0.0), ("--class", getattr(args, "label", None) is not None),
             ("--guidance", args.guidance not in (None, 1.0)), ("--prompt", getattr(args, "prompt", None) is not None),
             ("--classifier", args.classifier is not None), ("--classifier-scale", args.classifier_scale is not None),
             ("--truncation", args.truncation != 1.0))  # fmt: skip
    given = [flag for flag, on in flags if on and flag not in allowed]
    if given:
        raise GenlabError(f"{args.ckpt} holds {holds}: {', '.join(given)} {'steers' if len(given) == 1 else 'steer'} {steers}")


def refuse_sampler_options(args, what: str) -> None:
    """A consistency model samples with its own few-step rule: refuse the diffusion sampler's options."""
    refuse_options(args, what, "another kind of sampling (drop it; --steps sets the number of consistency steps, default 1)",
                   allowed=("--steps", "--class"))  # fmt: skip


def sample_consistency(args) -> None:
    import time

    from genlab.consistency_pipeline import generate_consistency, load_consistency
    from genlab.pipeline import save_samples

    refuse_sampler_options(args, "a consistency model")
    model, spec = load_consistency(args.ckpt, use_ema=not args.raw_weights)
    steps = args.steps or 1
    if args.label is not None and not spec.num_classes:
        raise GenlabError(f"{args.ckpt} is unconditional: drop --class")
    labels = args.label if args.label is not None else torch_labels(args.n, spec.num_classes)
    t0 = time.perf_counter()
    samples = generate_consistency(model, spec, args.n, steps=steps, labels=labels, seed=args.seed, batch_size=args.batch_size, progress=True)
    path = save_samples(samples, spec, args.out, nrow=spec.num_classes if args.label is None and spec.num_classes else None)
    print(f"wrote {args.n} samples to {path} (consistency model, {steps} step{'s' if steps > 1 else ''} = {steps} network "
          f"call{'s' if steps > 1 else ''} per sample, {time.perf_counter() - t0:.1f} s)")  # fmt: skip


def cmd_reflow(args) -> None:
    from genlab.flow.reflow import train_reflow
    from genlab.pipeline import TrainOptions, generate, load_diffusion, save_samples
    from genlab.train.checkpoint import resolve_checkpoint

    teacher, spec = load_diffusion(args.ckpt)
    if spec.process.get("kind") != "rectified_flow" or spec.prediction != "velocity":
        raise GenlabError(f"{args.ckpt} is not a rectified-flow model (its process is {spec.process.get('kind')}, prediction "
                          f"{spec.prediction}): reflow straightens a flow trained with `genlab train --flow ot`")  # fmt: skip
    if spec.latent or spec.text:
        raise GenlabError("reflow is implemented for pixel-space models with or without class labels (not --latent, --text)")
    saved = read_train_options(args.ckpt)
    out = args.out or Path(str(Path(args.ckpt)).rstrip("/") + "-reflow")
    options = TrainOptions(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed, ckpt_every=args.ckpt_every,
                           unet=saved.get("unet", {}), network=saved.get("network", "unet"), dit=saved.get("dit", {}))  # fmt: skip
    print(f"reflow of {args.ckpt}: {args.pairs} (noise, sample) pairs by {args.pair_sampler} in {args.pair_steps} steps, "
          f"then {args.steps} steps of training → {out}", flush=True)  # fmt: skip
    result = train_reflow(teacher, spec, options, pairs=args.pairs, pair_sampler=args.pair_sampler, pair_steps=args.pair_steps,
                          out_dir=out, resume=args.resume, overwrite=args.overwrite,
                          teacher_name=str(resolve_checkpoint(args.ckpt)))  # fmt: skip
    model = result.best_model.eval()
    n = 64
    labels = torch_labels(n, spec.num_classes)
    for steps in (1, 50):
        samples = generate(model, spec, n, sampler="flow-euler", steps=steps, labels=labels, seed=args.seed)
        save_samples(samples, spec, out / f"samples_{steps}step.png", nrow=spec.num_classes or None)
    print(f"done: {result.step} steps; one-step samples in {out / 'samples_1step.png'} "
          f"(sample with `genlab sample --ckpt {out} --sampler flow-euler --steps 1`)")


def read_train_options(path) -> dict:
    """The ``train_options`` a diffusion run was trained with (empty if the checkpoint has none)."""
    from genlab.train.checkpoint import read_config

    return read_config(path).get("metadata", {}).get("train_options", {}) or {}


def cmd_train_gan(args) -> None:
    import matplotlib.pyplot as plt

    from genlab.gan_pipeline import GAN_DATASETS, GANSpec, GANTrainOptions, gan_generate, train_gan
    from genlab.pipeline import load_training_data
    from genlab.viz import plot_losses, save_grid

    if args.dataset not in GAN_DATASETS:
        raise GenlabError(f"the GANs are built for 28×28 and 32×32 images; {args.dataset} is not one: use --dataset {' or '.join(GAN_DATASETS)}")
    given = [flag for flag, on in (("--conditional", args.conditional), ("--schedule", args.schedule != "linear"),
                                   ("--prediction", args.prediction != "epsilon"), ("--min-snr-gamma", args.min_snr_gamma is not None),
                                   ("--learned-variance", args.learned_variance), ("--base-channels", args.base_channels is not None),
                                   ("--channel-mults", args.channel_mults is not None), ("--lr", args.lr is not None), ("--latent", args.latent),
                                   ("--text", args.text)) if on]  # fmt: skip
    if given:
        raise GenlabError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for diffusion models; the {args.model} recipe "
                          "fixes its own loss and learning rate (drop them, or train --model diffusion)")  # fmt: skip
    out = args.out or Path("outputs") / f"{args.dataset}-{args.model}"
    images = load_training_data(args.dataset)[0]
    width = args.width or (16 if args.model == "stylegan" else 32)
    spec = GANSpec(dataset=args.dataset, shape=tuple(images.shape[1:]), model=args.model, width=width)
    options = GANTrainOptions(steps=args.steps, batch_size=args.batch_size or 64, seed=args.seed,
                              ckpt_every=args.ckpt_every, sample_every=args.sample_every)  # fmt: skip

    def sample_fn(generator, step):
        save_grid(gan_generate(generator, 64, seed=args.seed), out / "samples" / f"step_{step:06d}.png", nrow=8)

    r = spec.recipe
    print(f"training {args.model} on {args.dataset} ({len(images)} images, shape {spec.shape}; {r.loss} loss, "
          f"{r.n_critic} critic update(s) per generator update) → {out}", flush=True)
    state = train_gan(spec, images, options, out_dir=out, resume=args.resume, overwrite=args.overwrite,
                      sample_fn=sample_fn if args.sample_every else None)  # fmt: skip
    path = save_grid(gan_generate(state.emas["generator"].shadow, 64, seed=args.seed), out / "samples.png", nrow=8)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    for ax, key, who in zip(axes, ("d_loss", "g_loss"), ("discriminator", "generator")):
        plot_losses(state.history[key], ax=ax, title=f"{who} loss ({args.model}, {args.dataset})")
    fig.savefig(out / "loss.png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    tail = lambda k: sum(state.history[k][-50:]) / len(state.history[k][-50:])  # noqa: E731
    print(f"done: {state.step} steps, last losses D {tail('d_loss'):.4f} / G {tail('g_loss'):.4f}; checkpoints in {out}, samples in {path}")


def is_gan(path: Path) -> bool:
    from genlab.gan_pipeline import is_gan_checkpoint

    return is_gan_checkpoint(path)


def refuse_diffusion_options(args) -> None:
    """A GAN draws z and runs G once: refuse the options that steer a diffusion sampler."""
    refuse_options(args, "an unconditional GAN", "diffusion sampling and cannot be used with it (drop it; --truncation shapes StyleGAN samples)",
                   allowed=("--truncation",))  # fmt: skip


def guiding_classifier(args, spec):
    """(classifier, scale) from --classifier/--classifier-scale, checked against the model; (None, 1.0) without."""
    if args.classifier is None:
        if args.classifier_scale is not None:
            raise GenlabError("--classifier-scale needs --classifier CKPT (a noise-aware classifier from `genlab train-classifier`)")
        return None, 1.0
    from genlab.pipeline import check_classifier, load_noisy_classifier

    classifier, info = load_noisy_classifier(args.classifier)
    check_classifier(info, spec, where=f"the classifier at {args.classifier}")
    return classifier, 1.0 if args.classifier_scale is None else args.classifier_scale


def cmd_train_classifier(args) -> None:
    from genlab.diffusion import accuracy_by_time
    from genlab.pipeline import load_diffusion, load_training_data, train_noisy_classifier

    _, spec = load_diffusion(args.ckpt)
    if len(spec.shape) != 3:
        raise GenlabError(f"checkpoint at {args.ckpt} models {spec.dataset} points; classifier guidance here is for image models")
    if spec.latent:
        raise GenlabError(f"checkpoint at {args.ckpt} is a latent diffusion model: classifier guidance needs a classifier on its latents, "
                          "which genlab does not train; use a --conditional model with --guidance instead")  # fmt: skip
    out = args.out or args.ckpt / "classifier"
    train = load_training_data(spec.dataset)
    print(f"training a noise-aware classifier on {spec.dataset} ({len(train[0])} images, the model's {spec.process['kind']} process) → {out}", flush=True)
    result = train_noisy_classifier(spec, train, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                    out_dir=out, resume=args.resume, overwrite=args.overwrite)  # fmt: skip
    process = spec.make_process()
    test = load_training_data(spec.dataset, split="test")
    n = min(2000, len(test[0]))
    times = [round(q * process.t_max) for q in (0.0, 0.25, 0.5, 0.75, 1.0)] if process.discrete else [0.0, 0.25, 0.5, 0.75, 1.0]
    acc = accuracy_by_time(result.model, process, test[0][:n], test[1][:n], times)
    print(f"accuracy on {n} held-out {spec.dataset} images, by noise level:")
    for t, a in zip(times, acc):
        alpha, sigma = (v.item() for v in process.alpha_sigma(t))
        print(f"  t = {t:>6g} (SNR {alpha**2 / max(sigma**2, 1e-300):9.3g}): {a:.1%}")
    print(f"done: {result.step} steps; sample with `genlab sample --ckpt {args.ckpt} --classifier {out} --classifier-scale S`")


def cmd_sample(args) -> None:
    import time

    import torch

    from genlab.pipeline import IMAGE_FORMATS, generate, load_diffusion, save_samples

    if args.out.suffix.lower() not in IMAGE_FORMATS:
        raise GenlabError(f"cannot write {args.out}: the output must end in .png, .jpg or .jpeg")
    if is_gan(args.ckpt):
        return sample_gan(args)
    if is_consistency(args.ckpt):
        return sample_consistency(args)
    if args.truncation != 1.0:
        raise GenlabError("--truncation is for StyleGAN checkpoints; a diffusion model has no style space (drop it)")
    args.sampler, args.steps = args.sampler or "ddim", args.steps or 50
    model, spec = load_diffusion(args.ckpt, use_ema=not args.raw_weights)
    classifier, scale = guiding_classifier(args, spec)
    classes = spec.num_classes or (classifier.config.num_classes if classifier is not None else 0)
    labels, nrow, prompts = args.label, None, None
    if args.prompt is not None and spec.text is None:
        raise GenlabError(f"checkpoint at {args.ckpt} was not trained on text (--text), so it cannot follow --prompt; "
                          + ("use --class" if classes else "train one with `genlab train --text`"))  # fmt: skip
    if spec.text is not None:
        if args.label is not None:
            raise GenlabError("this model reads prompts: name the class in --prompt (e.g. --prompt \"太い 7\") instead of --class")
        if args.prompt is None:
            raise GenlabError('this model draws from prompts: pass --prompt, e.g. --prompt "太い 7" (or --prompt "" for its unconditional mode)')
        prompts = [args.prompt[i % len(args.prompt)] for i in range(args.n)]
        nrow = len(args.prompt) if len(args.prompt) > 1 else None
    guidance = args.guidance if args.guidance is not None else (3.0 if spec.text is not None and any(p.strip() for p in args.prompt) else 1.0)
    if classes and labels is None:  # one column per class
        labels, nrow = torch.arange(args.n) % classes, classes
    t0 = time.perf_counter()
    stats = {}
    samples = generate(model, spec, args.n, sampler=args.sampler, steps=args.steps, eta=args.eta, prompts=prompts,
                       labels=labels, guidance=guidance, seed=args.seed, batch_size=args.batch_size, progress=True,
                       classifier=classifier, classifier_scale=scale, grid=args.grid, stats=stats)  # fmt: skip
    path = save_samples(samples, spec, args.out, nrow=nrow)
    steps = "adaptive steps" if args.sampler == "ode" else f"{args.steps} steps"
    prompted = f", prompt{'s' if len(args.prompt) > 1 else ''} " + ", ".join(f"“{p}”" for p in args.prompt) if prompts else ""
    print(f"wrote {args.n} samples to {path} ({args.sampler}, {steps}, {stats['nfe']:.0f} denoiser calls per sample, "
          f"guidance {guidance}{prompted}, {time.perf_counter() - t0:.1f} s)")


def sample_gan(args) -> None:
    import time

    from genlab.gan_pipeline import gan_generate, load_gan
    from genlab.pipeline import IMAGE_FORMATS
    from genlab.viz import save_grid

    refuse_diffusion_options(args)
    generator, spec = load_gan(args.ckpt, use_ema=not args.raw_weights)
    t0 = time.perf_counter()
    samples = gan_generate(generator, args.n, seed=args.seed, batch_size=args.batch_size, psi=args.truncation)
    seconds = time.perf_counter() - t0
    if args.out.is_dir():
        raise GenlabError(f"cannot write {args.out}: it is a folder; give a file name such as {args.out / 'samples.png'}")
    path = save_grid(samples, args.out, scale=4, format=IMAGE_FORMATS[args.out.suffix.lower()])
    print(f"wrote {args.n} samples to {path} ({spec.model} generator, truncation ψ = {args.truncation}, {seconds:.2f} s)")


def os_error_message(e: OSError) -> str:
    """One line for an operating-system error: what failed, on which file, and what to do."""
    where = f" {e.filename}" if getattr(e, "filename", None) else ""
    if e.errno == errno.ENOSPC:
        return f"the disk is full (writing{where}); free some space and run again (a checkpointed run continues with --resume)"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"permission denied:{where}; choose a folder you can write to (--out) or fix its permissions"
    if e.errno == errno.EISDIR:
        return f"{where.strip()} is a folder, but a file is needed there; give a file name"
    if e.errno == errno.EEXIST:
        return f"{where.strip()} already exists and is a file, not a folder; choose another path"
    if e.errno == errno.ENOTDIR:
        return f"a path component of{where} is a file, not a folder; choose another path"
    if e.errno == errno.ENOENT:
        return f"no such file or folder:{where}"
    return f"{e.strerror or e}{':' + where if where else ''}"


COMMANDS = {"demo": cmd_demo, "train": cmd_train, "reflow": cmd_reflow, "train-classifier": cmd_train_classifier, "sample": cmd_sample, "eval": cmd_eval}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except GenlabError as e:
        print(f"genlab: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"genlab: error: {os_error_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genlab: interrupted (a run with checkpoints continues with --resume)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
