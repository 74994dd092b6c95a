"""Text-to-image on MNIST: does a CPU-trained model draw what the prompt says?

    GENLAB_DATA=../shared/data/mnist python benchmarks/text2image_mnist.py [--steps 1000] [--n 540]
    python benchmarks/text2image_mnist.py --quick        # 20 steps, N = 90, nothing saved

Two models with the same U-Net, data, steps and seed: ``genlab train --text`` (a text encoder and
cross-attention, trained on captions that name the class and a random subset of the measured
thickness, slant and size, in Japanese or English) and ``genlab train --conditional`` (class
labels). Both are sampled with DDIM 50 steps at several classifier-free guidance scales w, for N
prompts that name one class and one attribute word each (the 90 combinations, cycled; Japanese).

Judged on the generated images: the class by genlab's MNIST feature network's classifier, each
attribute by the measurement that wrote the captions (genlab.data.captions; chance 1/3: the words
are the training set's tertiles). The class-conditional model cannot read attribute words: its
attribute scores measure chance on these prompts. FID at the same N against N real held-out
images. A figure shows the cross-attention maps of one prompt's tokens.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, feature_network_or_exit, header, save  # noqa: E402

from genlab.data.captions import ATTRIBUTES, WORDS  # noqa: E402
from genlab.metrics import evaluate, generator_training_set  # noqa: E402
from genlab.pipeline import DiffusionSpec, TrainOptions, generate, train_diffusion  # noqa: E402
from genlab.text_pipeline import caption_ids, judge_prompts, prompt_ids, text_setup  # noqa: E402
from genlab.viz import save_grid, setup_japanese_font  # noqa: E402


def eval_prompts(n: int) -> tuple[list[str], torch.Tensor]:
    """n prompts "WORD digit" cycling through the 10 digits × 3 attributes × 3 words (Japanese), and their digits."""
    prompts, labels = [], []
    for i in range(n):
        digit, a, v = i % 10, ATTRIBUTES[(i // 10) % 3], (i // 30) % 3
        prompts.append(f"{WORDS[a][0][v]} {digit}")
        labels.append(digit)
    return prompts, torch.tensor(labels)


def attention_figure(model, text: dict, prompt: str, path: Path, seed: int = 0) -> None:
    """The image a prompt makes and, at a middle timestep of its sampling, where each token is read."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch.nn.functional as F

    from genlab.diffusion import q_sample
    from genlab.text_pipeline import text_tokenizer

    setup_japanese_font()
    spec = DiffusionSpec(dataset="mnist", shape=(1, 28, 28), text=text)
    image = generate(model, spec, 1, prompts=prompt, guidance=3.0, seed=seed)
    ids = prompt_ids(text, prompt, 1)
    t = torch.tensor([500])
    x_t = q_sample(image, t, spec.make_process(), torch.randn(image.shape, generator=torch.Generator().manual_seed(seed)))
    maps = model.cross_attention_maps(x_t, t, ids)
    side = max(maps)
    words = ["[CLS]", *text_tokenizer(text).decode(ids)[0].split()]
    fig, axes = plt.subplots(1, len(words) + 1, figsize=(2.2 * (len(words) + 1), 2.6))
    axes[0].imshow(image[0, 0], cmap="gray", vmin=-1, vmax=1)
    axes[0].set_title(f"「{prompt}」")
    for ax, k, word in zip(axes[1:], range(len(words)), words):
        m = F.interpolate(maps[side][:, k : k + 1], size=28, mode="bilinear", align_corners=False)[0, 0]
        ax.imshow(image[0, 0], cmap="gray", vmin=-1, vmax=1)
        ax.imshow(m, cmap="magma", alpha=0.6)
        ax.set_title(word)
    for ax in axes:
        ax.axis("off")
    fig.suptitle(f"クロスアテンション（{side}×{side}、t = 500、ヘッドとブロックの平均）")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000, help="training steps of each model (batch 128)")
    ap.add_argument("--n", type=int, default=540, help="samples per setting (a multiple of 90 covers every prompt equally)")
    ap.add_argument("--guidance", default="1,3,5", help="CFG scales w, comma-separated")
    ap.add_argument("--quick", action="store_true", help="20 steps, N = 90, 10 sampling steps, nothing saved")
    args = ap.parse_args()
    sampling_steps = 50
    if args.quick:
        args.steps, args.n, sampling_steps = 20, 180, 10
    scales = [float(w) for w in args.guidance.split(",")]
    info = header("Text-to-image on MNIST: prompt following of a CPU-trained model")
    net = feature_network_or_exit("mnist", "MNIST")
    train_x, train_y = generator_training_set(net, args.n)
    text = text_setup(train_x)
    ids, captions = caption_ids(text, train_x, train_y)
    print(f"data: {len(train_x)} training images with captions such as " + ", ".join(f"“{c}”" for c in captions[:5]), flush=True)
    prompts, labels = eval_prompts(args.n)
    options = TrainOptions(steps=args.steps, ckpt_every=0)
    shape = tuple(train_x.shape[1:])
    rows, models = [], {}
    for kind in ("text", "class"):
        spec = DiffusionSpec(dataset="mnist", shape=shape, text=text) if kind == "text" else DiffusionSpec(dataset="mnist", shape=shape, num_classes=10)
        data = (train_x, ids) if kind == "text" else (train_x, train_y)
        print(f"{kind}-conditional model: {args.steps} steps", flush=True)
        t0 = time.perf_counter()
        result = train_diffusion(spec, data, options, progress=not args.quick)
        train_s = time.perf_counter() - t0
        model = models[kind] = result.ema.eval()
        params = sum(p.numel() for p in model.parameters())
        for w in scales:
            t0 = time.perf_counter()
            cond = {"prompts": prompts} if kind == "text" else {"labels": labels}
            samples = generate(model, spec, args.n, steps=sampling_steps, guidance=w, seed=0, **cond)
            sample_s = time.perf_counter() - t0
            ev = evaluate(samples, "mnist", n=args.n, net=net, metrics=("fid",))
            verdict = judge_prompts(samples, prompts, text, net.logits(samples))
            row = {"model": kind, "guidance": w, "params": params, "train_steps": args.steps, "train_seconds": train_s,
                   "sample_seconds": sample_s, "FID": ev["FID"].value, "describe": ev["FID"].describe(),
                   **{f"{k}_accuracy": v["accuracy"] for k, v in verdict.items()}, "judged_per_attribute": verdict["thickness"]["n"]}  # fmt: skip
            rows.append(row)
            print(f"  w = {w:g}: class {verdict['class']['accuracy']:.1%}, " + ", ".join(f"{a} {verdict[a]['accuracy']:.1%}" for a in ATTRIBUTES)
                  + f"; FID {ev['FID'].value:.1f} (N = {args.n}); sampling {sample_s:.0f} s", flush=True)  # fmt: skip
            if not args.quick and kind == "text":
                grid = RESULTS / f"text2image_mnist_w{w:g}.png"
                order = sorted(range(min(args.n, 90)), key=lambda i: (i // 10, i % 10))  # one attribute word per row, digits across
                save_grid(samples[order], grid, nrow=10, scale=2)
                row["grid"] = str(grid.relative_to(RESULTS.parent.parent))
    real = judge_prompts(train_x[:args.n], [c for c in captions[:args.n]], text, net.logits(train_x[:args.n]))
    figure = RESULTS / "text2image_mnist_attention.png" if not args.quick else Path(tempfile.mkdtemp()) / "attention.png"
    attention_figure(models["text"], text, "太い 右に傾いた 7", figure)
    if args.quick:
        print(f"quick run: nothing saved (attention figure in {figure})")
        return
    save("text2image_mnist", {
        **info, "n": args.n, "steps": args.steps, "batch": options.batch_size, "lr": options.lr,
        "sampling": f"DDIM {sampling_steps} steps (trailing), η = 0", "reference": f"{args.n} real {net.reference} images",
        "feature_net": net.describe(), "train_images": len(train_x), "prompts": "one attribute word (Japanese) + one digit, the 90 combinations cycled",
        "real_images_own_captions": {k: v["accuracy"] for k, v in real.items()}, "rows": rows,
        "attention_figure": str(figure.relative_to(RESULTS.parent.parent)), "options": dataclasses.asdict(options),
    })  # fmt: skip


if __name__ == "__main__":
    main()
