"""A diffusion model that learns: the toy denoiser on a 2-D Gaussian mixture, end to end.

Trained through the same pipeline as the CLI (spec → loss → trainer → checkpoint → sampler), then
checked against the known mixture: weights, means and spreads of the samples. Also the round trip
through a checkpoint: samples of the reloaded model equal those of the in-memory EMA model.
"""

import numpy as np
import pytest
import torch

from genlab.pipeline import DiffusionSpec, TrainOptions, generate, load_diffusion, train_diffusion

WEIGHTS, MEANS, STD = np.array([0.3, 0.7]), np.array([[-2.0, 0.0], [2.0, 0.5]]), 0.3
N_SAMPLES = 2000


def mixture(n, seed):
    rng = np.random.default_rng(seed)
    k = rng.choice(2, size=n, p=WEIGHTS)
    return (MEANS[k] + STD * rng.standard_normal((n, 2))).astype(np.float32)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gmm")
    spec = DiffusionSpec(dataset="toy2d", shape=(2,), schedule="cosine", T=200, prediction="epsilon", clip=None)
    data = (torch.from_numpy(mixture(8000, seed=0)),)
    options = TrainOptions(steps=600, batch_size=256, lr=3e-3, ema_decay=0.99, ckpt_every=300)
    result = train_diffusion(spec, data, options, out_dir=out, progress=False)
    return spec, result, out


@pytest.mark.slow
def test_samples_match_the_mixture(run):
    spec, result, _ = run
    x = generate(result.best_model.eval(), spec, N_SAMPLES, sampler="ddpm", steps=200, seed=1, batch_size=N_SAMPLES).numpy()
    right = x[:, 0] > 0
    p = WEIGHTS[1]
    # mixture weight: Monte Carlo error √(p(1−p)/N) ≈ 0.010, plus 0.03 for what 600 steps cannot learn
    assert abs(right.mean() - p) < 4 * np.sqrt(p * (1 - p) / N_SAMPLES) + 0.03
    for k, side in ((0, ~right), (1, right)):
        pts = x[side]
        se = STD / np.sqrt(len(pts))  # Monte Carlo error of a component mean
        np.testing.assert_allclose(pts.mean(axis=0), MEANS[k], atol=4 * se + 0.1)
        np.testing.assert_allclose(pts.std(axis=0), STD, atol=0.1)
    # and no mass in between the modes (an untrained or broken sampler spreads it out)
    assert (np.abs(x[:, 0]) < 0.8).mean() < 0.02


@pytest.mark.slow
def test_reloaded_checkpoint_samples_like_the_trained_model(run):
    spec, result, out = run
    model, loaded = load_diffusion(out)
    assert loaded == spec  # the spec (process, prediction, range…) survives the JSON round trip
    a = generate(result.best_model.eval(), spec, 64, sampler="ddim", steps=20, seed=5, batch_size=64)
    b = generate(model, loaded, 64, sampler="ddim", steps=20, seed=5, batch_size=16)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)  # EMA weights, same process, per-sample noise
    raw, _ = load_diffusion(out, use_ema=False)
    c = generate(raw, loaded, 64, sampler="ddim", steps=20, seed=5)
    assert not torch.allclose(a, c)  # the raw weights are another model
