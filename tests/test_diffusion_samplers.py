"""Samplers: timestep grids and DDPM/DDIM loops against diffusers, exact answers, guidance, noise."""

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from genlab.diffusion import (
    SPACINGS,
    ClassifierFreeGuidance,
    ClipX0,
    Conditioned,
    NetworkDenoiser,
    SampleNoise,
    Trajectory,
    convert,
    ddim_coefficients,
    ddim_sample,
    ddpm_sample,
    make_schedule,
    predict_x0_eps,
    sample,
    sampling_grid,
    timesteps_grid,
)
from genlab.errors import ConfigError

PREDICTIONS = ("epsilon", "x0", "v")  # what a discrete schedule's network can predict
DIFFUSERS_PREDICTION = {"epsilon": "epsilon", "x0": "sample", "v": "v_prediction"}
SHAPE = (2, 1, 4, 4)


def denoiser(model, schedule, prediction="epsilon", clip=True, y=None, guidance=1.0, null=None):
    """The wrapper stack the pipeline builds: network adapter → guidance → condition → clipping."""
    d = NetworkDenoiser(model, schedule, prediction)
    if guidance != 1.0:
        d = ClassifierFreeGuidance(d, guidance, null)
    if y is not None:
        d = Conditioned(d, y)
    return ClipX0(d) if clip else d


def with_end(timesteps):
    """A sampler grid: the network timesteps, then the data (t = −1)."""
    return torch.cat([torch.as_tensor(timesteps, dtype=torch.int64), torch.tensor([-1])])


def full_grid(schedule):
    return torch.arange(len(schedule) - 1, -2, -1)


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
    g0 = seeded()
    traj = Trajectory()
    ours = ddpm_sample(
        denoiser(model, schedule, prediction, clip), torch.randn(SHAPE, generator=g0), full_grid(schedule),
        variance=variance, generator=g0, callback=traj,
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
    assert len(traj.x_t) == 401 and len(traj.x0_pred) == 400 and traj.times[0] == 399 and traj.times[-1] == -1


def test_ddpm_close_to_stock_diffusers_float32_schedule():
    # Without sharing ᾱ: diffusers' float32 cumprod vs our float64 one, still close.
    schedule = make_schedule("cosine", 1000)
    model = make_toy(schedule, "epsilon")
    g0 = seeded(1)
    ours = ddpm_sample(denoiser(model, schedule), torch.randn(SHAPE, generator=g0), full_grid(schedule), generator=g0)
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
    g0 = seeded(2)
    ours = ddpm_sample(denoiser(model, schedule, clip=False), torch.randn(SHAPE, generator=g0), with_end(grid), generator=g0)
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
    x_T, noise = draw_ddim_noise(steps, eta, seed=3)
    g0 = seeded(3)
    torch.randn(SHAPE, generator=g0)  # x_T, drawn above from the same stream
    traj = Trajectory()
    ours = ddim_sample(
        denoiser(model, schedule, prediction, clip), x_T, with_end(grid), eta=eta, generator=g0, callback=traj,
    )  # fmt: skip

    ref = diffusers_scheduler(
        DDIMScheduler, schedule, timestep_spacing=spacing, clip_sample=clip, set_alpha_to_one=True,
        prediction_type=DIFFUSERS_PREDICTION[prediction],
    )  # fmt: skip
    ref.set_timesteps(steps)
    assert torch.equal(ref.timesteps, grid)
    x = x_T
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
    x_T, noise = draw_ddim_noise(steps, eta, seed=4)
    g0 = seeded(4)
    torch.randn(SHAPE, generator=g0)
    ours = ddim_sample(denoiser(model, schedule, prediction, clip), x_T, with_end(grid), eta=eta, generator=g0)
    ref = ddim_reference(model, schedule, grid.tolist(), x_T, noise, eta, prediction, clip)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)


def test_ddim_eta1_is_ddpm_on_the_full_grid():
    schedule = make_schedule("linear", 1000)
    ab = schedule.alphas_cumprod
    for t in (1, 10, 500, 999):
        a_t, s_t, a_s, s_s = ab[t].sqrt(), (1 - ab[t]).sqrt(), ab[t - 1].sqrt(), (1 - ab[t - 1]).sqrt()
        std = ddim_coefficients(a_t.item(), s_t.item(), a_s.item(), s_s.item(), 1.0).std
        assert std**2 == pytest.approx(schedule.posterior_variance[t].item(), rel=1e-12)
    # Whole chains agree too (same noise; no clipping).
    model = make_toy(schedule, "epsilon")
    x_T = torch.randn(SHAPE, generator=seeded(5))
    ddim = ddim_sample(denoiser(model, schedule, clip=False), x_T, full_grid(schedule), eta=1.0, generator=seeded(6))
    ddpm = ddpm_sample(denoiser(model, schedule, clip=False), x_T, full_grid(schedule), generator=seeded(6))
    torch.testing.assert_close(ddim, ddpm, rtol=0, atol=1e-5)


def test_ddim_eta1_on_a_subgrid_equals_diffusers_ddpm_custom_timesteps():
    # An independent diffusers reference for an arbitrary grid (DDIMScheduler cannot follow one).
    schedule = make_schedule("linear", 1000)
    model = make_toy(schedule, "v")
    grid = timesteps_grid(1000, 23, "linspace")
    g0 = seeded(6)
    ours = ddim_sample(denoiser(model, schedule, "v", clip=False), torch.randn(SHAPE, generator=g0), with_end(grid), eta=1.0, generator=g0)
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
        return convert(x0, "x0", prediction, x_t.double(), a.sqrt(), (1 - a).sqrt()).to(x_t.dtype)

    return model


X0_STAR = torch.linspace(-0.9, 0.9, 16).view(1, 1, 4, 4)


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("steps", [1, 7, 50])
@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_ddim_eta0_lands_on_the_data_point(spacing, steps, prediction):
    schedule = make_schedule("linear", 1000)
    grid = timesteps_grid(1000, steps, spacing)
    traj = Trajectory()
    x = ddim_sample(
        denoiser(oracle(schedule, X0_STAR, prediction), schedule, prediction, clip=False),
        torch.randn(3, 1, 4, 4, generator=seeded(7)), with_end(grid), callback=traj,
    )  # fmt: skip
    # ε → x̂₀ divides by √ᾱ_t, which multiplies float32 rounding by up to 1/√ᾱ_999 ≈ 160.
    atol = 1e-5 + (4e-7 / schedule.sqrt_alphas_cumprod[grid[0]].item() if prediction != "x0" else 0.0)
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
    grid = sampling_grid(schedule, 25, "trailing")  # starts at t = 999 where ᾱ = 0
    x_T = torch.randn(2, 1, 4, 4, generator=seeded(8))
    x = ddim_sample(denoiser(oracle(schedule, X0_STAR, "v"), schedule, "v"), x_T, grid)
    torch.testing.assert_close(x, X0_STAR.expand(2, -1, -1, -1), rtol=0, atol=1e-5)
    x = ddpm_sample(denoiser(oracle(schedule, X0_STAR, "v"), schedule, "v"), x_T, full_grid(schedule), generator=seeded(8))
    torch.testing.assert_close(x, X0_STAR.expand(2, -1, -1, -1), rtol=0, atol=1e-5)  # DDPM with ZT-SNR too
    with pytest.raises(ConfigError, match="prediction='v'"):
        ddim_sample(denoiser(oracle(schedule, X0_STAR, "epsilon"), schedule), x_T, grid)


@pytest.mark.parametrize("variance", ["beta_tilde", "beta"])
def test_ddpm_with_the_oracle_lands_on_the_data_point(variance):
    schedule = make_schedule("cosine", 200)
    model = oracle(schedule, X0_STAR, "epsilon")
    x_T = torch.randn(2, 1, 4, 4, generator=seeded(9))
    x = ddpm_sample(denoiser(model, schedule), x_T, full_grid(schedule), variance=variance, generator=seeded(9))
    torch.testing.assert_close(x, X0_STAR.expand(2, -1, -1, -1), rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------
# Guidance, conditioning, clipping as wrappers
# ------------------------------------------------------------------------------------------


class Recorder:
    """Wraps a model and records the batch size and labels of every call."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def __call__(self, x, t, y=None):
        self.calls.append((x.shape[0], None if y is None else y.tolist()))
        return self.model(x, t, y=y)


@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("sampler", [ddim_sample, ddpm_sample])
def test_cfg_is_one_batched_call_and_mixes_in_eps_space(prediction, sampler):
    schedule = make_schedule("linear", 100)
    toy = make_toy(schedule, prediction)
    rec = Recorder(toy)
    w, null, y = 3.0, 10, torch.tensor([1, 4])
    traj = Trajectory()
    x_T = torch.randn(SHAPE, generator=seeded(10))
    sampler(denoiser(rec, schedule, prediction, clip=False, y=y, guidance=w, null=null), x_T, [60, 20, -1],
            generator=seeded(1), callback=traj)
    assert rec.calls == [(4, [1, 4, null, null])] * 2  # cond and uncond in ONE forward call

    t = torch.full((2,), 60)
    a = schedule.alphas_cumprod[60].item()
    eps_c = predict_x0_eps(toy(x_T, t, y=y), x_T, a**0.5, (1 - a) ** 0.5, prediction)[1]
    eps_u = predict_x0_eps(toy(x_T, t, y=torch.full((2,), null)), x_T, a**0.5, (1 - a) ** 0.5, prediction)[1]
    eps = eps_u + w * (eps_c - eps_u)  # the ε-space rule of Ho & Salimans
    x0 = (x_T - (1 - a) ** 0.5 * eps) / a**0.5
    torch.testing.assert_close(traj.x0_pred[0], x0, rtol=0, atol=1e-5)


def test_cfg_with_a_context_tensor_condition():
    # Conditioning that is not a label: a (B, L, D) context and a null context that broadcasts.
    schedule = make_schedule("linear", 50)
    seen = []

    def net(x, t, y=None):
        seen.append(y.shape)
        return 0.1 * y.mean(dim=(1, 2)).view(-1, 1, 1, 1) * torch.ones_like(x)

    ctx, null = torch.randn(2, 3, 5, generator=seeded(0)), torch.zeros(1, 3, 5)
    d = ClassifierFreeGuidance(NetworkDenoiser(net, schedule, "epsilon"), 2.0, null)
    x = torch.randn(SHAPE, generator=seeded(1))
    out = d(x, 30, ctx)
    assert seen == [(4, 3, 5)]
    a = schedule.alphas_cumprod[30].item()
    eps = 2.0 * 0.1 * ctx.mean(dim=(1, 2)).view(-1, 1, 1, 1)  # ε_u = 0, w = 2
    torch.testing.assert_close(out, (x - (1 - a) ** 0.5 * eps) / a**0.5, rtol=1e-6, atol=1e-6)
    with pytest.raises(ConfigError, match="broadcast"):
        ClassifierFreeGuidance(NetworkDenoiser(net, schedule), 2.0, torch.zeros(4))(x, 30, ctx)


def test_guidance_scale_one_is_the_conditional_model():
    schedule = make_schedule("linear", 100)
    rec = Recorder(make_toy(schedule, "epsilon"))
    x_T = torch.randn(SHAPE, generator=seeded(11))
    y = torch.tensor([3, 3])
    a = ddim_sample(denoiser(rec, schedule, y=y), x_T, [50, 10, -1])
    b = ddim_sample(denoiser(rec, schedule, y=y, guidance=1.0, null=0), x_T, [50, 10, -1])
    assert rec.calls == [(2, [3, 3])] * 4 and torch.equal(a, b)


def test_guidance_errors():
    schedule = make_schedule("linear", 100)
    base = NetworkDenoiser(make_toy(schedule, "epsilon"), schedule)
    with pytest.raises(ConfigError, match="null condition"):
        ClassifierFreeGuidance(base, 2.0, None)
    with pytest.raises(ConfigError, match="needs a condition"):
        ClassifierFreeGuidance(base, 2.0, 0)(torch.zeros(SHAPE), 5)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="finite"):
            ClassifierFreeGuidance(base, bad, 0)


def test_clipping_keeps_x0_in_range_and_the_sample_too():
    schedule = make_schedule("linear", 100)
    big = lambda x, t, y=None: 5 * torch.ones_like(x)  # noqa: E731 — x̂₀ far outside [-1, 1]
    traj = Trajectory()
    x = ddim_sample(ClipX0(NetworkDenoiser(big, schedule, "x0")), torch.randn(SHAPE), sampling_grid(schedule, 5), callback=traj)
    assert all(x0.abs().max() <= 1 for x0 in traj.x0_pred) and torch.equal(x, torch.ones(SHAPE))
    with pytest.raises(ConfigError, match="low < high"):
        ClipX0(NetworkDenoiser(big, schedule), 1.0, -1.0)


# ------------------------------------------------------------------------------------------
# Grids, callbacks, arguments
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sampler", [ddim_sample, ddpm_sample])
def test_one_step_grid_returns_x0_hat(sampler):
    schedule = make_schedule("cosine", 100)
    model = make_toy(schedule, "x0")
    x_T = torch.randn(SHAPE, generator=seeded(3))
    out = sampler(denoiser(model, schedule, "x0", clip=False), x_T, [99, -1], generator=seeded(4))
    torch.testing.assert_close(out, model(x_T, torch.full((2,), 99)), rtol=0, atol=0)


def test_callback_can_replace_the_state():
    # The inpainting / SDEdit hook: whatever the callback returns is what the sampler continues with.
    schedule = make_schedule("linear", 100)
    model = make_toy(schedule, "epsilon")
    seen = []

    def pin(info):
        seen.append((info.i, info.t, info.t_next))
        return torch.zeros_like(info.x) if info.i == 0 else None

    x_T = torch.randn(SHAPE, generator=seeded(5))
    a = ddim_sample(denoiser(model, schedule, clip=False), x_T, [80, 40, -1], callback=pin)
    b = ddim_sample(denoiser(model, schedule, clip=False), torch.zeros(SHAPE), [40, -1])
    assert seen == [(0, 80, 40), (1, 40, -1)] and torch.equal(a, b)


@pytest.mark.parametrize("grid", [[], [5], [5, 5], [3, 7], [100, 5], [5, -2], [-0.5, -1], [float("nan"), -1]])
def test_bad_grids_raise(grid):
    schedule = make_schedule("linear", 100)
    with pytest.raises(ConfigError):
        ddim_sample(denoiser(make_toy(schedule, "epsilon"), schedule), torch.zeros(SHAPE), grid)


@pytest.mark.parametrize("eta", [-0.1, 1.5, float("nan"), float("inf")])
def test_bad_eta_raises(eta):
    schedule = make_schedule("linear", 100)
    with pytest.raises(ConfigError, match="eta"):
        ddim_sample(denoiser(make_toy(schedule, "epsilon"), schedule), torch.zeros(SHAPE), [50, -1], eta=eta)


def test_bad_variance_raises():
    schedule = make_schedule("linear", 100)
    with pytest.raises(ConfigError, match="beta_tilde"):
        ddpm_sample(denoiser(make_toy(schedule, "epsilon"), schedule), torch.zeros(SHAPE), [50, -1], variance="large")


def test_sampling_grid_ends_at_the_data():
    schedule = make_schedule("linear", 1000)
    g = sampling_grid(schedule, 50)
    assert g.tolist() == timesteps_grid(1000, 50, "trailing").tolist() + [-1]
    a, s = schedule.alpha_sigma(g[-1])
    assert a.item() == 1.0 and s.item() == 0.0


def test_runs_without_grad_and_in_float32():
    schedule = make_schedule("linear", 50)
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    x = ddim_sample(NetworkDenoiser(lambda x, t, y=None: net(x), schedule), torch.randn(SHAPE), sampling_grid(schedule, 5))
    assert x.dtype == torch.float32 and not x.requires_grad and x.shape == SHAPE


# ------------------------------------------------------------------------------------------
# Per-sample noise and chunked sampling
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sampler, kw", [(ddpm_sample, {}), (ddim_sample, {"eta": 0.5})])
def test_sample_i_depends_on_seed_and_i_only(sampler, kw):
    schedule = make_schedule("linear", 100)
    d = denoiser(make_toy(schedule, "epsilon"), schedule)
    grid = sampling_grid(schedule, 8)
    shape = SHAPE[1:]
    one = sample(sampler, d, 7, shape, grid, seed=3, batch_size=7, **kw)
    chunked = sample(sampler, d, 7, shape, grid, seed=3, batch_size=3, **kw)
    assert torch.equal(one, chunked)  # chunk size does not matter
    tail = sample(sampler, d, 10, shape, grid, seed=3, batch_size=4, **kw)
    assert torch.equal(tail[:7], one)  # asking for more samples keeps the first ones
    other = sample(sampler, d, 7, shape, grid, seed=4, batch_size=7, **kw)
    assert not torch.isclose(other, one).all(dim=(1, 2, 3)).any()  # another seed: every sample differs


def test_sample_noise_streams_are_independent_normals():
    noise = SampleNoise(0, range(2000))
    z = noise.randn_like(torch.empty(2000, 8)).double()
    assert abs(z.mean().item()) < 5 / (16000**0.5)
    assert abs(z.var().item() - 1) < 5 * (2 / 16000) ** 0.5
    corr = torch.corrcoef(z.T)  # draws within a sample uncorrelated
    assert (corr - torch.eye(8, dtype=torch.float64)).abs().max() < 0.1
    first = torch.stack([SampleNoise(0, [i]).randn_like(torch.empty(1, 8))[0] for i in range(5)])
    assert torch.equal(first.float(), z[:5].float())  # row i is stream (0, i) whatever the request
    with pytest.raises(ConfigError, match="seed"):
        SampleNoise(-1, [0])


def test_chunked_sampling_with_labels_and_trajectory():
    schedule = make_schedule("linear", 100)
    rec = Recorder(make_toy(schedule, "epsilon"))
    d = ClassifierFreeGuidance(NetworkDenoiser(rec, schedule), 2.0, 10)
    y = torch.arange(5)
    out, traj = sample(ddim_sample, d, 5, SHAPE[1:], [60, 20, -1], cond=y, batch_size=2, trajectory=True)
    assert [c[0] for c in rec.calls] == [4, 4, 4, 4, 2, 2]  # chunks of 2, 2, 1, doubled by guidance
    assert rec.calls[0][1] == [0, 1, 10, 10] and rec.calls[4][1] == [4, 10]
    assert len(traj.x_t) == 3 and traj.x_t[0].shape == (5, *SHAPE[1:]) and torch.equal(traj.x_t[-1], out)
    with pytest.raises(ConfigError, match="one condition per sample"):
        sample(ddim_sample, d, 5, SHAPE[1:], [60, -1], cond=y[:3])
    with pytest.raises(ConfigError, match="number of samples"):
        sample(ddim_sample, d, 0, SHAPE[1:], [60, -1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_same_samples_on_cuda_and_cpu():
    schedule = make_schedule("linear", 100)
    d = denoiser(make_toy(schedule, "epsilon"), schedule)
    cpu = sample(ddpm_sample, d, 4, SHAPE[1:], sampling_grid(schedule, 100), seed=16)
    gpu = sample(ddpm_sample, d, 4, SHAPE[1:], sampling_grid(schedule, 100), seed=16, device="cuda")
    torch.testing.assert_close(gpu, cpu, rtol=0, atol=1e-4)
