"""Samplers: timestep grids and DDPM/DDIM loops against diffusers, exact answers, guidance."""

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from genlab.diffusion import (
    PREDICTIONS,
    SPACINGS,
    convert,
    ddim_coefficients,
    ddim_sample,
    ddpm_sample,
    make_schedule,
    predict_x0_eps,
    timesteps_grid,
)
from genlab.errors import ConfigError

DIFFUSERS_PREDICTION = {"epsilon": "epsilon", "x0": "sample", "v": "v_prediction"}
SHAPE = (2, 1, 4, 4)


def make_toy(schedule, prediction):
    """A deterministic stand-in for a network: bounded, uses x_t, t and neighbouring pixels.

    For ε and v it is the exact ε of Gaussian data N(0, 0.5²) plus a wiggle, so long chains stay
    in range with or without clipping.
    """
    ab = schedule.alphas_cumprod

    def model(x, t, y=None):
        a = ab[t].to(x.dtype).view(-1, *([1] * (x.ndim - 1)))  # (B, 1, 1, 1)
        wiggle = 0.05 * torch.tanh(x.roll(1, -1)) * torch.cos(t.to(x.dtype) / 50).view_as(a)
        if y is not None:
            wiggle = wiggle + 0.1 * y.to(x.dtype).view_as(a)
        if prediction == "x0":
            return 0.8 * torch.tanh(x) + wiggle
        return (1 - a).sqrt() * x / (0.25 * a + 1 - a) + wiggle

    return model


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------
# Timestep grids
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("T", [10, 1000])
def test_grid_equals_diffusers_set_timesteps(spacing, T):
    ref = DDIMScheduler(num_train_timesteps=T, timestep_spacing=spacing)
    for steps in range(1, T + 1):
        ref.set_timesteps(steps)
        grid = timesteps_grid(T, steps, spacing)
        assert grid.dtype == torch.int64 and len(grid) == steps
        assert torch.all(grid[1:] < grid[:-1]) and grid.min() >= 0 and grid.max() <= T - 1
        # diffusers' float arange sometimes adds a spurious last timestep −1 (e.g. T=1000, steps=61).
        assert torch.equal(grid, ref.timesteps[:steps]), (spacing, steps)


def test_grid_examples():
    assert timesteps_grid(1000, 50, "leading")[:3].tolist() == [980, 960, 940]
    assert timesteps_grid(1000, 50, "trailing")[[0, -1]].tolist() == [999, 19]
    assert timesteps_grid(1000, 50, "linspace")[[0, -1]].tolist() == [999, 0]


@pytest.mark.parametrize("steps", [0, -3, 11])
def test_grid_rejects_bad_steps(steps):
    with pytest.raises(ConfigError, match="steps"):
        timesteps_grid(10, steps)


def test_grid_rejects_bad_spacing():
    with pytest.raises(ConfigError, match="trailing"):
        timesteps_grid(10, 5, "uniform")


# ------------------------------------------------------------------------------------------
# DDPM vs diffusers' DDPMScheduler
# ------------------------------------------------------------------------------------------


def diffusers_scheduler(cls, schedule, **kw):
    """A diffusers scheduler on our float64 ᾱ (its own betas equal ours, see the schedule tests;
    it keeps ᾱ in float32, which alone would move a 1000-step chain by ~1e-4)."""
    sched = cls(num_train_timesteps=len(schedule), **kw)
    sched.alphas_cumprod = schedule.alphas_cumprod.clone()
    return sched


@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("variance, variance_type", [("beta_tilde", "fixed_small"), ("beta", "fixed_large")])
@pytest.mark.parametrize("clip", [True, False])
def test_ddpm_trajectory_equals_diffusers(prediction, variance, variance_type, clip):
    schedule = make_schedule("linear", 400, beta_end=0.05)  # T = 400 keeps the 12 cases fast
    model = make_toy(schedule, prediction)
    ours, traj = ddpm_sample(
        model, SHAPE, schedule, variance=variance, prediction=prediction, clip_x0=clip,
        generator=seeded(), return_trajectory=True,
    )  # fmt: skip

    ref = diffusers_scheduler(
        DDPMScheduler, schedule, variance_type=variance_type, clip_sample=clip,
        prediction_type=DIFFUSERS_PREDICTION[prediction],
    )  # fmt: skip
    g = seeded()  # same generator, same draw order: x_T, then one draw per step with t > 0
    x = torch.randn(SHAPE, generator=g)
    xs, x0s = [x], []
    for t in ref.timesteps:
        out = ref.step(model(x, torch.full((SHAPE[0],), int(t))), t, x, generator=g)
        x = out.prev_sample
        xs.append(x)
        x0s.append(out.pred_original_sample)
    torch.testing.assert_close(torch.stack(traj.x_t), torch.stack(xs), rtol=0, atol=1e-5)
    torch.testing.assert_close(torch.stack(traj.x0_pred), torch.stack(x0s), rtol=0, atol=1e-5)
    torch.testing.assert_close(ours, x, rtol=0, atol=1e-5)
    assert len(traj.x_t) == 401 and len(traj.x0_pred) == 400 and traj.timesteps[0] == 399


def test_ddpm_close_to_stock_diffusers_float32_schedule():
    # Without sharing ᾱ: diffusers' float32 cumprod vs our float64 one, still close.
    schedule = make_schedule("cosine", 1000)
    model = make_toy(schedule, "epsilon")
    ours = ddpm_sample(model, SHAPE, schedule, generator=seeded(1))
    ref = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    g = seeded(1)
    x = torch.randn(SHAPE, generator=g)
    for t in ref.timesteps:
        x = ref.step(model(x, torch.full((SHAPE[0],), int(t))), t, x, generator=g).prev_sample
    torch.testing.assert_close(ours, x, rtol=0, atol=1e-3)


def test_ddpm_on_a_subgrid_equals_diffusers_custom_timesteps():
    schedule = make_schedule("linear", 1000)
    model = make_toy(schedule, "epsilon")
    grid = timesteps_grid(1000, 40, "linspace")
    ours = ddpm_sample(model, SHAPE, schedule, timesteps=grid, clip_x0=False, generator=seeded(2))
    ref = diffusers_scheduler(DDPMScheduler, schedule, clip_sample=False)
    ref.set_timesteps(timesteps=grid.tolist())
    g = seeded(2)
    x = torch.randn(SHAPE, generator=g)
    for t in ref.timesteps:
        x = ref.step(model(x, torch.full((SHAPE[0],), int(t))), t, x, generator=g).prev_sample
    torch.testing.assert_close(ours, x, rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------
# DDIM vs diffusers' DDIMScheduler and vs a float64 transcription of eq. 12
# ------------------------------------------------------------------------------------------


def draw_ddim_noise(n_steps, eta, seed):
    """x_T and per-step noise in the samplers' documented order (no draw when σ = 0)."""
    g = seeded(seed)
    x_T = torch.randn(SHAPE, generator=g)
    noise = [torch.randn(SHAPE, generator=g) if eta > 0 and i < n_steps - 1 else None for i in range(n_steps)]
    return x_T, noise


# diffusers' DDIM step jumps by T // steps whatever the spacing (diffusers issues #12633,
# #11347), which is the grid's own next point only for these (T, steps, spacing):
DIFFUSERS_CONSISTENT = [(1000, 50, "leading"), (1000, 40, "trailing"), (100, 100, "linspace"), (1000, 7, "leading")]


@pytest.mark.parametrize("T, steps, spacing", DIFFUSERS_CONSISTENT)
@pytest.mark.parametrize("eta", [0.0, 0.6])
@pytest.mark.parametrize("clip", [True, False])
@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_ddim_trajectory_equals_diffusers(T, steps, spacing, eta, clip, prediction):
    schedule = make_schedule("quadratic", T, beta_start=0.00085, beta_end=0.012)
    model = make_toy(schedule, prediction)
    grid = timesteps_grid(T, steps, spacing)
    ours, traj = ddim_sample(
        model, SHAPE, schedule, grid, eta=eta, prediction=prediction, clip_x0=clip,
        generator=seeded(3), return_trajectory=True,
    )  # fmt: skip

    ref = diffusers_scheduler(
        DDIMScheduler, schedule, timestep_spacing=spacing, clip_sample=clip, set_alpha_to_one=True,
        prediction_type=DIFFUSERS_PREDICTION[prediction],
    )  # fmt: skip
    ref.set_timesteps(steps)
    assert torch.equal(ref.timesteps, grid)
    x, noise = draw_ddim_noise(steps, eta, seed=3)
    xs = [x]
    for i, t in enumerate(ref.timesteps):
        out = model(x, torch.full((SHAPE[0],), int(t)))
        x = ref.step(out, t, x, eta=eta, variance_noise=noise[i] if eta > 0 else None, use_clipped_model_output=clip).prev_sample
        xs.append(x)
    torch.testing.assert_close(torch.stack(traj.x_t), torch.stack(xs), rtol=0, atol=1e-5)
    torch.testing.assert_close(ours, x, rtol=0, atol=1e-5)


def ddim_reference(model, schedule, grid, x_T, noise, eta, prediction, clip):
    """Song et al. eq. 12 written out in float64 NumPy, step by step."""
    ab = schedule.alphas_cumprod.numpy()
    x = x_T.double().numpy()
    for i, t in enumerate(grid):
        a_t = ab[t]
        a_prev = ab[grid[i + 1]] if i + 1 < len(grid) else 1.0
        out = model(torch.from_numpy(x), torch.full((x.shape[0],), int(t))).numpy()
        if prediction == "epsilon":
            eps = out
            x0 = (x - np.sqrt(1 - a_t) * eps) / np.sqrt(a_t)
        elif prediction == "x0":
            x0 = out
            eps = (x - np.sqrt(a_t) * x0) / np.sqrt(1 - a_t)
        else:
            x0 = np.sqrt(a_t) * x - np.sqrt(1 - a_t) * out
            eps = np.sqrt(1 - a_t) * x + np.sqrt(a_t) * out
        if clip:
            x0 = np.clip(x0, -1, 1)
            eps = (x - np.sqrt(a_t) * x0) / np.sqrt(1 - a_t)
        sigma = eta * np.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
        x = np.sqrt(a_prev) * x0 + np.sqrt(1 - a_prev - sigma**2) * eps
        if sigma > 0:
            x = x + sigma * noise[i].double().numpy()
    return torch.from_numpy(x).float()


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("steps", [1, 13, 61])
@pytest.mark.parametrize("prediction, eta, clip", [("epsilon", 0.0, True), ("v", 1.0, False), ("x0", 0.3, True)])
def test_ddim_equals_float64_transcription_on_any_grid(spacing, steps, prediction, eta, clip):
    schedule = make_schedule("cosine", 1000)
    model = make_toy(schedule, prediction)
    grid = timesteps_grid(1000, steps, spacing)
    ours = ddim_sample(model, SHAPE, schedule, grid, eta=eta, prediction=prediction, clip_x0=clip, generator=seeded(4))
    x_T, noise = draw_ddim_noise(steps, eta, seed=4)
    ref = ddim_reference(model, schedule, grid.tolist(), x_T, noise, eta, prediction, clip)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)


def test_ddim_eta1_is_ddpm_on_the_full_grid():
    schedule = make_schedule("linear", 1000)
    for t in (1, 10, 500, 999):
        sigma = ddim_coefficients(schedule.alphas_cumprod[t].item(), schedule.alphas_cumprod[t - 1].item(), 1.0).sigma
        assert sigma**2 == pytest.approx(schedule.posterior_variance[t].item(), rel=1e-12)
    # Whole chains agree too (same noise; no clipping, where DDIM keeps the unclipped ε̂).
    model = make_toy(schedule, "epsilon")
    ddim = ddim_sample(model, SHAPE, schedule, timesteps_grid(1000, 1000), eta=1.0, clip_x0=False, generator=seeded(5))
    ddpm = ddpm_sample(model, SHAPE, schedule, variance="beta_tilde", clip_x0=False, generator=seeded(5))
    torch.testing.assert_close(ddim, ddpm, rtol=0, atol=1e-5)


def test_ddim_eta1_on_a_subgrid_equals_diffusers_ddpm_custom_timesteps():
    # An independent diffusers reference for an arbitrary grid (DDIMScheduler cannot follow one).
    schedule = make_schedule("linear", 1000)
    model = make_toy(schedule, "v")
    grid = timesteps_grid(1000, 23, "linspace")
    ours = ddim_sample(model, SHAPE, schedule, grid, eta=1.0, prediction="v", clip_x0=False, generator=seeded(6))
    ref = diffusers_scheduler(DDPMScheduler, schedule, clip_sample=False, prediction_type="v_prediction")
    ref.set_timesteps(timesteps=grid.tolist())
    g = seeded(6)
    x = torch.randn(SHAPE, generator=g)
    for t in ref.timesteps:
        x = ref.step(model(x, torch.full((SHAPE[0],), int(t))), t, x, generator=g).prev_sample
    torch.testing.assert_close(ours, x, rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------
# Exact answers: a model that knows the true ε of a one-point data set
# ------------------------------------------------------------------------------------------


def oracle(schedule, x0_star, prediction):
    """ε = (x_t − √ᾱ_t x0*)/√(1 − ᾱ_t), expressed as an ε-, x₀- or v-network."""
    ab = schedule.alphas_cumprod

    def model(x_t, t, y=None):
        a = ab[t].view(-1, 1, 1, 1)  # float64: 1 − ᾱ_0 ≈ 1e-4 loses digits in float32
        x0 = x0_star.double().expand_as(x_t)
        return convert(x0, "x0", prediction, x_t.double(), a).to(x_t.dtype)

    return model


X0_STAR = torch.linspace(-0.9, 0.9, 16).view(1, 1, 4, 4)


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("steps", [1, 7, 50])
@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_ddim_eta0_lands_on_the_data_point(spacing, steps, prediction):
    schedule = make_schedule("linear", 1000)
    grid = timesteps_grid(1000, steps, spacing)
    x, traj = ddim_sample(
        oracle(schedule, X0_STAR, prediction), (3, 1, 4, 4), schedule, grid, prediction=prediction,
        clip_x0=False, generator=seeded(7), return_trajectory=True,
    )  # fmt: skip
    # ε → x̂₀ divides by √ᾱ_t, which multiplies float32 rounding by up to 1/√ᾱ_999 ≈ 160.
    atol = 1e-5 + (4e-7 / schedule.sqrt_alphas_cumprod[grid[0]].item() if prediction == "epsilon" else 0.0)
    torch.testing.assert_close(x, X0_STAR.expand(3, -1, -1, -1), rtol=0, atol=atol)
    # η = 0 keeps the noise direction: every intermediate x_t is √ᾱ_t x0* + √(1-ᾱ_t) ε with one ε.
    ab = schedule.alphas_cumprod
    eps0 = (traj.x_t[0].double() - ab[grid[0]].sqrt() * X0_STAR) / (1 - ab[grid[0]]).sqrt()
    for t_next, x_t in zip(grid.tolist()[1:], traj.x_t[1:-1]):
        torch.testing.assert_close(
            x_t.double(), ab[t_next].sqrt() * X0_STAR + (1 - ab[t_next]).sqrt() * eps0, rtol=0, atol=1e-4
        )


def test_zero_terminal_snr_v_model_lands_on_the_data_point():
    schedule = make_schedule("linear", 1000, zero_terminal_snr=True)
    grid = timesteps_grid(1000, 25, "trailing")  # starts at t = 999 where ᾱ = 0
    x = ddim_sample(oracle(schedule, X0_STAR, "v"), (2, 1, 4, 4), schedule, grid, prediction="v", generator=seeded(8))
    torch.testing.assert_close(x, X0_STAR.expand(2, -1, -1, -1), rtol=0, atol=1e-5)
    with pytest.raises(ConfigError, match="prediction='v'"):
        ddim_sample(oracle(schedule, X0_STAR, "epsilon"), (2, 1, 4, 4), schedule, grid, generator=seeded(8))


@pytest.mark.parametrize("variance", ["beta_tilde", "beta"])
def test_ddpm_with_the_oracle_lands_on_the_data_point(variance):
    schedule = make_schedule("cosine", 200)
    model = oracle(schedule, X0_STAR, "epsilon")
    x = ddpm_sample(model, (2, 1, 4, 4), schedule, variance=variance, generator=seeded(9))
    torch.testing.assert_close(x, X0_STAR.expand(2, -1, -1, -1), rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------
# Guidance, randomness, arguments
# ------------------------------------------------------------------------------------------


class Recorder:
    """Wraps a model and records the batch size of every call."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def __call__(self, x, t, y=None):
        self.calls.append((x.shape[0], None if y is None else y.tolist()))
        return self.model(x, t, y=y)


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_cfg_is_one_batched_call_and_mixes_in_eps_space(prediction):
    schedule = make_schedule("linear", 100)
    toy = make_toy(schedule, prediction)
    rec = Recorder(toy)
    w, null, y = 3.0, 10, torch.tensor([1, 4])
    grid = [60, 20]
    _, traj = ddim_sample(
        rec, SHAPE, schedule, grid, prediction=prediction, y=y, guidance_scale=w, null_label=null,
        clip_x0=False, generator=seeded(10), return_trajectory=True,
    )  # fmt: skip
    assert rec.calls == [(4, [1, 4, null, null])] * 2  # cond and uncond in ONE forward call

    x_t, t = traj.x_t[0], torch.full((2,), 60)
    a = schedule.alphas_cumprod[60].item()
    eps_c = predict_x0_eps(toy(x_t, t, y=y), x_t, a, prediction)[1]
    eps_u = predict_x0_eps(toy(x_t, t, y=torch.full((2,), null)), x_t, a, prediction)[1]
    eps = eps_u + w * (eps_c - eps_u)
    x0 = (x_t - (1 - a) ** 0.5 * eps) / a**0.5
    torch.testing.assert_close(traj.x0_pred[0], x0, rtol=0, atol=1e-5)


def test_guidance_scale_one_is_the_conditional_model():
    schedule = make_schedule("linear", 100)
    rec = Recorder(make_toy(schedule, "epsilon"))
    a = ddim_sample(rec, SHAPE, schedule, [50, 10], y=3, generator=seeded(11))
    assert rec.calls == [(2, [3, 3])] * 2  # an int label means "this class for all"
    y = torch.tensor([3, 3])
    b = ddim_sample(rec, SHAPE, schedule, [50, 10], y=y, guidance_scale=1.0, null_label=0, generator=seeded(11))
    assert torch.equal(a, b)


def test_guidance_without_null_label_raises():
    schedule = make_schedule("linear", 100)
    with pytest.raises(ConfigError, match="null_label"):
        ddpm_sample(make_toy(schedule, "epsilon"), SHAPE, schedule, y=torch.tensor([0, 1]), guidance_scale=2.0)
    with pytest.raises(ConfigError, match="labels"):
        ddpm_sample(make_toy(schedule, "epsilon"), SHAPE, schedule, guidance_scale=2.0, null_label=0)


def test_seed_reproducibility_and_x_T():
    schedule = make_schedule("linear", 100)
    model = make_toy(schedule, "epsilon")
    a = ddpm_sample(model, SHAPE, schedule, generator=seeded(12))
    b = ddpm_sample(model, SHAPE, schedule, generator=seeded(12))
    c = ddpm_sample(model, SHAPE, schedule, generator=seeded(13))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.abs().max() <= 1.0
    x_T = torch.randn(SHAPE, generator=seeded(14))
    d1 = ddim_sample(model, SHAPE, schedule, [90, 50, 10], x_T=x_T)
    d2 = ddim_sample(model, SHAPE, schedule, [90, 50, 10], x_T=x_T, generator=seeded(99))
    assert torch.equal(d1, d2)  # η = 0 draws nothing after x_T


@pytest.mark.parametrize("grid", [[], [5, 5], [3, 7], [100, 5], [5, -1]])
def test_bad_grids_raise(grid):
    schedule = make_schedule("linear", 100)
    with pytest.raises(ConfigError):
        ddim_sample(make_toy(schedule, "epsilon"), SHAPE, schedule, grid)


def test_runs_without_grad_and_in_float32():
    schedule = make_schedule("linear", 50)
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    x = ddim_sample(lambda x, t, y=None: net(x), SHAPE, schedule, timesteps_grid(50, 5), generator=seeded(15))
    assert x.dtype == torch.float32 and not x.requires_grad and x.shape == SHAPE


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_same_samples_on_cuda_and_cpu():
    schedule = make_schedule("linear", 100)
    model = make_toy(schedule, "epsilon")
    cpu = ddpm_sample(model, SHAPE, schedule, generator=seeded(16))
    gpu = ddpm_sample(model, SHAPE, schedule, generator=seeded(16), device="cuda")
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-4)
