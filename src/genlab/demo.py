"""`genlab demo`: a class-conditional diffusion model trained on this CPU in a few minutes.

1. Train a class-conditional DDPM (U-Net, ε-prediction, linear schedule, T = 1000) on
   scikit-learn's 8×8 digits, with condition dropout for classifier-free guidance.
2. Sample one row per digit with DDIM and classifier-free guidance; save the grid, a GIF of
   the denoising trajectory and the loss curve.
3. Train a small CNN on the real digits (held-out split for its own accuracy) and ask it which
   digit each generated image shows: the conditional accuracy says whether the model draws the
   digit it was asked for.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from genlab.pipeline import DiffusionSpec, TrainOptions, generate, train_diffusion


@dataclass
class DemoConfig:
    steps: int = 1500  # diffusion training steps
    batch_size: int = 128
    samples_per_class: int = 50  # generated images per digit for the accuracy
    grid_per_class: int = 10  # images per row in the grid
    sampling_steps: int = 50  # DDIM steps
    guidance: float = 2.0  # classifier-free guidance scale w
    classifier_steps: int = 600
    schedule: str = "linear"  # β schedule
    min_snr_gamma: float | None = None  # Min-SNR-γ loss weighting
    lr: float = 2e-3
    seed: int = 0


SMOKE = DemoConfig(steps=20, batch_size=32, samples_per_class=2, grid_per_class=2, sampling_steps=4, classifier_steps=150)


def _say(msg: str) -> None:
    print(msg, flush=True)


def run_demo(out_dir: str | Path = "outputs/demo", config: DemoConfig | None = None, progress: bool = True) -> dict:
    """Run the demo, write its files into ``out_dir`` and return the metrics it printed."""
    from genlab.data import load_digits
    from genlab.nn.classifier import ConvClassifier, ConvClassifierConfig, train_classifier
    from genlab.viz import plot_losses, save_gif, save_grid

    cfg = config or DemoConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    images, labels = load_digits()
    spec = DiffusionSpec(dataset="digits", shape=tuple(images.shape[1:]), num_classes=10, schedule=cfg.schedule)

    _say(f"[1/3] training a class-conditional diffusion model on {len(images)} 8×8 digits ({cfg.steps} steps, {torch.get_num_threads()} CPU threads)")
    options = TrainOptions(steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed, ckpt_every=0, min_snr_gamma=cfg.min_snr_gamma)
    # The demo owns out/model: running it again replaces its previous model (overwrite=True).
    result = train_diffusion(spec, (images, labels), options, out_dir=out / "model", overwrite=True, progress=progress)
    t_train = time.perf_counter() - t_start
    model = result.best_model.eval()

    _say(f"[2/3] sampling {cfg.samples_per_class} images per digit with DDIM ({cfg.sampling_steps} steps, guidance w={cfg.guidance})")
    t0 = time.perf_counter()
    per = cfg.grid_per_class
    grid_labels = torch.arange(10).repeat_interleave(per)  # one row per digit
    grid, traj = generate(model, spec, len(grid_labels), steps=cfg.sampling_steps, labels=grid_labels,
                          guidance=cfg.guidance, seed=cfg.seed, return_trajectory=True, progress=progress)
    eval_labels = torch.arange(10).repeat_interleave(cfg.samples_per_class)
    samples = generate(model, spec, len(eval_labels), steps=cfg.sampling_steps, labels=eval_labels,
                       guidance=cfg.guidance, seed=cfg.seed + 1, progress=progress)
    t_sample = time.perf_counter() - t0
    save_grid(grid, out / "samples.png", nrow=per, scale=6)
    save_gif(traj.x_t, out / "denoising.gif", nrow=per, scale=4)
    ax = plot_losses(result.losses, title="training loss (L_simple)")
    ax.figure.savefig(out / "loss.png", dpi=120, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(ax.figure)

    _say("[3/3] judging the samples with a CNN trained on the real digits")
    train_x, train_y = load_digits("train")
    test_x, test_y = load_digits("test")
    with torch.random.fork_rng(devices=[]):  # the judge's initial weights, without touching the caller's RNG
        torch.manual_seed(cfg.seed)
        clf = ConvClassifier(ConvClassifierConfig(image_size=8, width=32))
    clf = train_classifier(clf, train_x, train_y, steps=cfg.classifier_steps, batch_size=128, lr=2e-3, seed=cfg.seed, progress=False).eval()
    with torch.no_grad():
        clf_acc = (clf(test_x).argmax(1) == test_y).float().mean().item()
        probs = clf(samples).softmax(1)
    pred = probs.argmax(1)
    cond_acc = (pred == eval_labels).float().mean().item()
    confidence = probs.max(1).values.mean().item()
    per_class = [(pred[eval_labels == k] == k).float().mean().item() for k in range(10)]
    wall = time.perf_counter() - t_start

    metrics = {
        "conditional_accuracy": cond_acc,
        "per_class_accuracy": per_class,
        "mean_confidence": confidence,
        "classifier_test_accuracy": clf_acc,
        "samples_judged": len(eval_labels),
        "train_seconds": t_train,
        "sample_seconds": t_sample,
        "wall_seconds": wall,
        "final_loss": sum(result.losses[-50:]) / len(result.losses[-50:]),
        "config": asdict(cfg),
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _say("")
    _say(f"conditional accuracy: {cond_acc:.1%} of {len(eval_labels)} generated digits are read as the digit asked for")
    _say("  per digit: " + "  ".join(f"{k}:{a:.0%}" for k, a in enumerate(per_class)))
    _say(f"  (judge: a CNN with {clf_acc:.1%} accuracy on {len(test_y)} held-out real digits; mean confidence on samples {confidence:.2f})")
    _say(f"time: {wall:.0f} s in all (training {t_train:.0f} s, sampling {t_sample:.0f} s)")
    _say(f"wrote {out / 'samples.png'} (one row per digit 0-9), {out / 'denoising.gif'}, {out / 'loss.png'}, {out / 'metrics.json'}")
    return metrics
