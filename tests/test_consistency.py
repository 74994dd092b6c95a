"""genlab.flow.consistency and genlab.consistency_pipeline: consistency models against exact answers.

References: the closed forms of CM (boundary condition, c_skip/c_out), scipy's normal CDF (iCT's
lognormal index distribution), genlab's Euler/Heun samplers in the process's own coordinates (the
teacher step), the closed-form PF-ODE flow map of a Gaussian (:meth:`NoisedGaussianMixture.ode_flow`:
the exact consistency function, what distillation with the exact teacher must learn), and a linear-
Gaussian moment recursion derived here (multistep sampling with the exact consistency function).
"""

import copy
import math

import numpy as np
import pytest
import torch
from scipy import stats

from genlab.consistency_pipeline import (
    ConsistencyOptions,
    ConsistencySpec,
    generate_consistency,
    is_consistency_checkpoint,
    load_consistency,
    train_consistency,
    train_consistency_distillation,
)
from genlab.diffusion import NoisedGaussianMixture, VEProcess, euler_sample, heun_sample, make_schedule
from genlab.errors import CheckpointError, ConfigError
from genlab.flow.consistency import (
    ConsistencyDistillation,
    ConsistencyFunction,
    ConsistencyTraining,
    consistency_distance,
    consistency_sample,
    consistency_sigmas,
    ict_discretization,
    lognormal_index_probs,
    sampling_sigmas,
    teacher_step,
)
from genlab.nn.toy_denoiser import ToyDenoiser, ToyDenoiserConfig
from genlab.nn.unet import UNet, UNetConfig
from genlab.pipeline import DiffusionSpec, build_model
from genlab.train.ema import EMA
from genlab.train.engine import TrainConfig, TrainState, train

SIGMA_MIN = 0.002
MEAN = torch.tensor([0.5, -0.3], dtype=torch.float64)
COV = torch.tensor([[0.30, 0.12], [0.12, 0.15]], dtype=torch.float64)


def gaussian(sigma_max: float = 80.0) -> NoisedGaussianMixture:
    return NoisedGaussianMixture([1.0], MEAN[None], COV[None], VEProcess(sigma_max))


def small_unet(num_classes: int = 0) -> UNet:
    torch.manual_seed(0)
    return UNet(UNetConfig(image_size=8, in_channels=1, base_channels=8, channel_mults=(1, 2), attention_resolutions=(), num_res_blocks=1,
                           num_classes=num_classes))  # fmt: skip


def toy_net(seed: int = 0, **kw) -> ToyDenoiser:
    torch.manual_seed(seed)
    return ToyDenoiser(ToyDenoiserConfig(dim=2, hidden=64, num_blocks=2, **kw))


# ----------------------------------------------------------------------------- the parameterisation


def test_boundary_condition_holds_exactly_and_coefficients_are_cms():
    f = ConsistencyFunction(small_unet(), sigma_min=SIGMA_MIN, sigma_data=0.5)
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 3
    assert torch.equal(f(x, SIGMA_MIN), x)  # f(x, σ_min) = x bit for bit, whatever the network
    mixed = torch.tensor([SIGMA_MIN, 1.0, SIGMA_MIN, 80.0], dtype=torch.float64)
    out = f(x, mixed)
    assert torch.equal(out[[0, 2]], x[[0, 2]]) and not torch.allclose(out[1], x[1])

    # CM Appendix C, evaluated by hand: c_skip = σ_d²/((σ−ε)²+σ_d²), c_out = σ_d(σ−ε)/√(σ_d²+σ²), c_in = 1/√(σ²+σ_d²)
    for s, skip, c_out, c_in in [(0.5, 0.25 / (0.498**2 + 0.25), 0.5 * 0.498 / math.sqrt(0.5), 1 / math.sqrt(0.5)),
                                 (80.0, 0.25 / (79.998**2 + 0.25), 0.5 * 79.998 / math.sqrt(6400.25), 1 / math.sqrt(6400.25))]:  # fmt: skip
        got = [v.item() for v in f.coefficients(s)]
        assert got[:3] == pytest.approx([skip, c_out, c_in], rel=1e-12)
        assert got[3] == pytest.approx(250 * math.log(s), rel=1e-12)
    # … and the output is c_skip x + c_out F(c_in x, c_noise) of the raw network
    c_skip, c_out, c_in, c_noise = (v.item() for v in f.coefficients(3.0))
    with torch.no_grad():
        raw = f.net(c_in * x, torch.full((4,), c_noise), y=None)
        torch.testing.assert_close(f(x, 3.0), c_skip * x + c_out * raw)
    with pytest.raises(ConfigError, match="sigma_min"):
        f(x, 0.001)


def test_grids_follow_karras_and_ict():
    s = consistency_sigmas(18, SIGMA_MIN, 80.0)
    i = torch.arange(18, dtype=torch.float64)
    ref = (80 ** (1 / 7) + (17 - i) / 17 * (SIGMA_MIN ** (1 / 7) - 80 ** (1 / 7))) ** 7  # Karras eq. 5, counted upwards
    torch.testing.assert_close(s, ref, rtol=1e-12, atol=0)
    odd = consistency_sigmas(18, 0.0100005000375, 157.4)  # a teacher's range: f must be the identity at its σ_0, bit for bit
    assert (s[0].item(), s[-1].item(), odd[0].item(), odd[-1].item()) == (SIGMA_MIN, 80.0, 0.0100005000375, 157.4)
    # iCT: N(k) = min(s0 · 2^⌊k/K'⌋, s1) + 1 with K' = ⌊K/(log2⌊s1/s0⌋ + 1)⌋; K = 400k gives K' = 50k (8 stages)
    assert [ict_discretization(k, 400_000) for k in (0, 49_999, 50_000, 150_000, 350_000, 399_999)] == [11, 11, 21, 81, 1281, 1281]
    assert ict_discretization(5, 6, s0=2, s1=8) == 9  # K' = 6 // 3 = 2: 3, 5, 9
    # lognormal index probabilities: the N(P_mean, P_std²) mass of ln σ on each gap (scipy as the reference)
    grid = consistency_sigmas(41, SIGMA_MIN, 80.0)
    cdf = stats.norm.cdf(np.log(grid.numpy()), loc=-1.1, scale=2.0)
    np.testing.assert_allclose(lognormal_index_probs(grid).numpy(), np.diff(cdf) / (cdf[-1] - cdf[0]), rtol=1e-10)
    assert sampling_sigmas(1) == [80.0] and sampling_sigmas(3)[1:] == pytest.approx(consistency_sigmas(4).flip(0)[1:3].tolist())


def test_distances():
    a, b = torch.randn(5, 3, 4, 4, generator=torch.Generator().manual_seed(1)), torch.zeros(5, 3, 4, 4)
    sq = (a**2).sum((1, 2, 3))
    torch.testing.assert_close(consistency_distance(a, b, "l2"), sq / 48)
    c = 0.00054 * math.sqrt(48)
    torch.testing.assert_close(consistency_distance(a, b, "pseudo_huber"), (sq + c**2).sqrt() - c)
    assert consistency_distance(b, b, "pseudo_huber").abs().max() == 0


def test_target_network_is_an_ema_with_constant_decay():
    """θ⁻ ← μ θ⁻ + (1 − μ) θ after every optimiser step (CM Algorithm 2), with θ⁻₀ = θ₀."""
    net = toy_net(0)
    target = copy.deepcopy(net).requires_grad_(False)
    theta0 = [p.detach().clone() for p in net.parameters()]
    step = ConsistencyDistillation(teacher=gaussian(), num_sigmas=10, metric="l2", target_decay=0.9)
    state = TrainState(models={"model": net, "target": target}, optimizers={"model": torch.optim.SGD(net.parameters(), lr=0.1)})
    data = (gaussian().sample(64, generator=torch.Generator().manual_seed(0)).float(),)
    train(state, step, data, TrainConfig(steps=1, batch_size=64, warmup_steps=0, grad_clip=None, device="cpu"), progress=False)
    for p0, p1, pt in zip(theta0, net.parameters(), target.parameters()):
        torch.testing.assert_close(pt, 0.9 * p0 + 0.1 * p1)
    assert any(not torch.equal(p0, p1) for p0, p1 in zip(theta0, net.parameters()))


# ----------------------------------------------------------------------------- the teacher's ODE step


@pytest.mark.parametrize("solver", ["euler", "heun"])
def test_teacher_step_is_genlabs_euler_heun_step_for_a_discrete_vp_teacher(solver):
    schedule = make_schedule("linear", 1000)
    means = torch.tensor([[1.0, 0.0], [-1.0, 0.5]], dtype=torch.float64)
    covs = torch.stack([0.1 * torch.eye(2), 0.2 * torch.eye(2)]).double()
    teacher = NoisedGaussianMixture([0.4, 0.6], means, covs, schedule)  # E[x₀|x_t] is nonlinear in x_t
    g = torch.Generator().manual_seed(0)
    sig_from = torch.tensor([0.5, 3.0, 20.0, 100.0], dtype=torch.float64)  # all inside the schedule's [0.01, 157]
    sig_to = torch.tensor([0.3, 1.0, 18.0, 40.0], dtype=torch.float64)
    y = means[0] + sig_from[:, None] * torch.randn(4, 2, generator=g, dtype=torch.float64)  # EDM coordinates
    got = teacher_step(teacher, y, sig_from, sig_to, solver=solver)  # one batch, a different step per sample
    sampler = heun_sample if solver == "heun" else euler_sample
    for i in range(4):
        ta, tb = schedule.time_of(sig_from[i : i + 1]).item(), schedule.time_of(sig_to[i : i + 1]).item()
        assert ta != round(ta)  # fractional timesteps, as a σ-grid asks of a discrete schedule
        alpha_a, alpha_b = (schedule.alpha_sigma(torch.tensor([t], dtype=torch.float64))[0].item() for t in (ta, tb))
        ref = sampler(teacher, alpha_a * y[i : i + 1], [ta, tb]) / alpha_b  # in x_t, back to y
        torch.testing.assert_close(got[i : i + 1], ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("solver, order", [("euler", 1), ("heun", 2)])
def test_teacher_steps_converge_to_the_exact_flow_map_at_their_order(solver, order):
    teacher = gaussian()
    y = MEAN + 5.0 * torch.randn(6, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    exact = teacher.ode_flow(y, 5.0, 0.05)  # the closed-form PF-ODE solution
    errors = []
    for n in (101, 201):
        x = y
        levels = consistency_sigmas(n, 0.05, 5.0).flip(0)
        for a, b in zip(levels[:-1], levels[1:]):
            x = teacher_step(teacher, x, a.item(), b.item(), solver=solver)
        errors.append((x - exact).abs().max().item())
    assert errors[1] < (1e-4 if order == 2 else 1e-2)
    assert 0.8 * 2**order < errors[0] / errors[1] < 1.2 * 2**order, errors  # halving the steps: error / 2^order


# ----------------------------------------------------------------------------- learning


def _exact_map(mix, x, sigma):
    return torch.cat([mix.ode_flow(x[i : i + 1], sigma[i].item(), SIGMA_MIN) for i in range(len(x))])


def test_distillation_with_the_exact_teacher_learns_the_closed_form_flow_map():
    """The exact consistency function of Gaussian data is the PF-ODE's flow map to σ_min."""
    mix = gaussian()
    data = mix.sample(4096, generator=torch.Generator().manual_seed(1)).float()
    net = toy_net(0)
    untrained = ConsistencyFunction(copy.deepcopy(net), SIGMA_MIN).eval()
    step = ConsistencyDistillation(teacher=mix, sigma_max=80.0, num_sigmas=18, target_decay=0.95)  # CM's μ, iCT's pseudo-Huber
    target = copy.deepcopy(net).eval().requires_grad_(False)
    state = TrainState(models={"model": net, "target": target}, optimizers={"model": torch.optim.Adam(net.parameters(), lr=3e-3)})
    train(state, step, (data,), TrainConfig(steps=800, batch_size=256, warmup_steps=50, grad_clip=None, device="cpu"), progress=False)

    g = torch.Generator().manual_seed(5)  # held-out points on the trajectories, at the grid's noise levels
    sigma = step.sigmas[torch.randint(1, 18, (1000,), generator=g)]
    x = mix.sample(1000, generator=g) + sigma[:, None] * torch.randn(1000, 2, generator=g, dtype=torch.float64)
    ref = _exact_map(mix, x, sigma)
    f = ConsistencyFunction(net, SIGMA_MIN).eval()
    with torch.no_grad():
        rms = ((f(x.float(), sigma).double() - ref) ** 2).sum(1).mean().sqrt().item()
        rms0 = ((untrained(x.float(), sigma).double() - ref) ** 2).sum(1).mean().sqrt().item()
    assert rms0 > 0.5  # the data's std is ~0.5: an untrained map is far off …
    assert rms < 0.07 and rms < 0.1 * rms0, (rms, rms0)  # … a distilled one close (measured 0.035–0.037 over 4 seeds; μ = 0: 0.06–0.24)


def _moment_errors(samples):
    s = samples.double()
    return (s.mean(0) - MEAN).norm().item(), (torch.cov(s.T) - COV).norm().item()


def test_consistency_training_without_teacher_moves_one_step_samples_to_the_data():
    mix = gaussian()
    data = mix.sample(4096, generator=torch.Generator().manual_seed(1)).float()
    net = toy_net(0)
    untrained = ConsistencyFunction(copy.deepcopy(net), SIGMA_MIN).eval()
    step = ConsistencyTraining(sigma_max=80.0, total_steps=1000, s0=10, s1=1280)  # iCT: pseudo-Huber, λ = 1/Δσ, lognormal n
    state = TrainState(models={"model": net}, optimizers={"model": torch.optim.Adam(net.parameters(), lr=3e-3)}, emas={"model": EMA(net, 0.99)})
    train(state, step, (data,), TrainConfig(steps=1000, batch_size=256, warmup_steps=50, grad_clip=None, device="cpu"), progress=False)
    f = ConsistencyFunction(state.emas["model"].shadow, SIGMA_MIN).eval()  # the EMA smooths CT's noisy one-sample targets
    mean_err, cov_err = _moment_errors(consistency_sample(f, 4000, (2,), [80.0], seed=3, batch_size=4000))
    mean0, cov0 = _moment_errors(consistency_sample(untrained, 4000, (2,), [80.0], seed=3, batch_size=4000))
    assert mean0 > 0.4 and cov0 > 0.25  # untrained: far from N(μ, Σ)
    assert mean_err < 0.12 and cov_err < 0.12, (mean_err, cov_err)  # measured 0.03–0.06 and 0.04–0.08 over 4 seeds (SE ~0.01)


# ----------------------------------------------------------------------------- sampling


def test_multistep_sampling_with_the_exact_function_follows_the_gaussian_recursion():
    sigma_max = 5.0  # small, so that one step visibly misses (the start σ_max z ignores the data)
    mix = gaussian(sigma_max)
    exact = lambda x, s, cond: mix.ode_flow(x, s[0].item(), SIGMA_MIN)  # noqa: E731  (one level per call)
    lam, u = torch.linalg.eigh(COV)

    def predicted(taus):  # x ~ N(m, C) → f(x, τ) ~ N(μ + M(m − μ), M C Mᵀ), M = U diag(√((λ+ε²)/(λ+τ²))) Uᵀ
        m, c = torch.zeros(2, dtype=torch.float64), taus[0] ** 2 * torch.eye(2, dtype=torch.float64)
        for k, tau in enumerate(taus):
            if k:
                c = c + (tau**2 - SIGMA_MIN**2) * torch.eye(2, dtype=torch.float64)
            M = u @ torch.diag(((lam + SIGMA_MIN**2) / (lam + tau**2)).sqrt()) @ u.T
            m, c = MEAN + M @ (m - MEAN), M @ c @ M.T
        return m, c

    n = 20_000
    errors = []
    for taus in ([sigma_max], [sigma_max, 1.0], [sigma_max, 1.0, 0.3]):
        s = consistency_sample(exact, n, (2,), taus, sigma_min=SIGMA_MIN, seed=0, batch_size=5000)
        m, c = predicted(taus)
        se = (c.diagonal() / n).sqrt()
        assert ((s.mean(0) - m).abs() < 4.5 * se).all(), (taus, s.mean(0), m)
        torch.testing.assert_close(torch.cov(s.T), c, rtol=0.05, atol=0.004)
        errors.append((m - MEAN).norm().item() + (c - COV - SIGMA_MIN**2 * torch.eye(2)).norm().item())
    assert errors[0] > 0.03 and errors[2] < errors[1] < errors[0] / 2  # more steps: closer to the data


def test_sample_i_depends_on_seed_and_index_only():
    f = ConsistencyFunction(small_unet(num_classes=3), SIGMA_MIN).eval()
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    taus = [80.0, 2.0]
    a = consistency_sample(f, 7, (1, 8, 8), taus, seed=2, cond=labels, batch_size=7)
    b = consistency_sample(f, 7, (1, 8, 8), taus, seed=2, cond=labels, batch_size=3)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)  # float rounding of kernels chosen by batch size
    torch.testing.assert_close(consistency_sample(f, 3, (1, 8, 8), taus, seed=2, cond=labels[:3]), a[:3], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(consistency_sample(f, 3, (1, 8, 8), taus, seed=3, cond=labels[:3]), a[:3])
    assert not torch.allclose(consistency_sample(f, 3, (1, 8, 8), [80.0], seed=2, cond=labels[:3]), a[:3])  # the 2nd step matters


# ----------------------------------------------------------------------------- the pipeline

TOY = DiffusionSpec(dataset="toy2d", shape=(2,), toy="moons", clip=None)
POINTS = (torch.randn(64, 2, generator=torch.Generator().manual_seed(0)),)


def _teacher(seed=0):
    torch.manual_seed(seed)
    return build_model(TOY).eval(), TOY


def _run(method, out=None, crash_at=None, resume=False, teacher_seed=0):
    options = ConsistencyOptions(steps=8, batch_size=16, seed=3, ckpt_every=3, sample_every=1 if crash_at else 0, s0=2, s1=8)

    def crash(f, step):
        if step == crash_at:
            raise KeyboardInterrupt

    kw = dict(out_dir=out, resume=resume, sample_fn=crash if crash_at else None, progress=False)
    if method == "cd":
        return train_consistency_distillation(_teacher(teacher_seed), POINTS, options, **kw)
    return train_consistency(ConsistencySpec(dataset="toy2d", shape=(2,), toy="moons", clip=None), POINTS, options, **kw)


@pytest.mark.parametrize("method", ["cd", "ct"])
def test_train_interrupt_resume_is_bit_identical_and_reloads(tmp_path, method):
    full = _run(method)
    assert set(full.models) == ({"model", "target", "teacher"} if method == "cd" else {"model"})  # CD: μ = 0.95 → a target
    with pytest.raises(KeyboardInterrupt):
        _run(method, tmp_path, crash_at=5)  # after the step-3 checkpoint
    resumed = _run(method, tmp_path, resume=True)
    assert resumed.history == full.history
    for name in full.models:
        for (k, a), b in zip(full.models[name].state_dict().items(), resumed.models[name].state_dict().values()):
            assert torch.equal(a, b), (name, k)
    for a, b in zip(full.emas["model"].shadow.state_dict().values(), resumed.emas["model"].shadow.state_dict().values()):
        assert torch.equal(a, b)
    # the checkpoint rebuilds f from JSON with what sampling needs, and samples the same points
    f, spec = load_consistency(tmp_path)
    assert is_consistency_checkpoint(tmp_path) and spec.method == method and spec.shape == (2,)
    if method == "cd":  # the teacher's discrete linear schedule knows σ̂ ∈ [0.0100, 157]: its part of EDM's [0.002, 80]
        assert spec.sigma_min == pytest.approx(math.sqrt(1e-4 / (1 - 1e-4))) and spec.sigma_max == 80.0
        assert spec.teacher["diffusion"]["dataset"] == "toy2d" and len(spec.teacher["digest"]) == 64
    else:
        assert (spec.sigma_min, spec.sigma_max) == (0.002, 80.0) and spec.teacher is None
    in_memory = ConsistencyFunction(resumed.emas["model"].shadow, spec.sigma_min, spec.sigma_data)
    for steps in (1, 2):
        assert torch.equal(generate_consistency(f, spec, 5, steps=steps, seed=1),
                           consistency_sample(in_memory, 5, (2,), sampling_sigmas(steps, spec.sigma_min, 80.0), seed=1))  # fmt: skip


def test_resume_with_another_teacher_is_refused(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _run("cd", tmp_path, crash_at=4)
    with pytest.raises(CheckpointError, match="digest"):
        _run("cd", tmp_path, resume=True, teacher_seed=1)


def test_conditional_distillation_from_an_image_teacher_and_labels():
    spec = DiffusionSpec(dataset="digits", shape=(1, 8, 8), num_classes=3)
    teacher = small_unet(num_classes=3).eval()
    images = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    labels = torch.arange(32) % 3
    options = ConsistencyOptions(steps=2, batch_size=8, guidance=2.0, unet=dict(base_channels=8, channel_mults=(1, 2), attention_resolutions=()))
    state = train_consistency_distillation((teacher, spec), (images, labels), options, progress=False)
    f = ConsistencyFunction(state.emas["model"].shadow, 0.002)
    cspec = ConsistencySpec(dataset="digits", shape=(1, 8, 8), num_classes=3)
    out = generate_consistency(f, cspec, 4, steps=[80.0, 1.0], labels=torch.tensor([0, 1, 2, 0]))
    assert out.shape == (4, 1, 8, 8) and out.min() >= -1 and out.max() <= 1
    with pytest.raises(ConfigError, match="out of range"):
        generate_consistency(f, cspec, 2, labels=3)
    with pytest.raises(ConfigError, match="labels must lie"):
        train_consistency_distillation((teacher, spec), (images, labels + 1), options, progress=False)


def test_bad_input_is_one_clear_config_error():
    f = ConsistencyFunction(toy_net(), SIGMA_MIN)
    spec = ConsistencySpec(dataset="toy2d", shape=(2,), toy="moons", clip=None)
    with pytest.raises(ConfigError, match="positive int"):
        generate_consistency(f, spec, 4, steps=0)
    with pytest.raises(ConfigError, match="at most sigma_max"):
        generate_consistency(f, spec, 4, steps=[100.0, 1.0])
    with pytest.raises(ConfigError, match="descending"):
        consistency_sample(f, 4, (2,), [1.0, 5.0])
    with pytest.raises(ConfigError, match="above sigma_min"):
        consistency_sample(f, 4, (2,), [80.0, 0.002])
    with pytest.raises(ConfigError, match="unconditional"):
        generate_consistency(f, spec, 4, labels=1)
    with pytest.raises(ConfigError, match="sigma_max must be larger"):
        ConsistencySpec(dataset="toy2d", shape=(2,), sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ConfigError, match="sigma_max must be larger"):
        consistency_sigmas(10, 80.0, 80.0)
    with pytest.raises(ConfigError, match="sigma_max must be larger"):
        ConsistencyTraining(sigma_min=0.5, sigma_max=0.1)
    with pytest.raises(ConfigError, match="target_decay"):
        ConsistencyTraining(target_decay=1.0)
    with pytest.raises(ConfigError, match="solver"):
        teacher_step(gaussian(), torch.zeros(2, 2), 1.0, 0.5, solver="rk4")
    # a teacher for another data set: by name, or by the shape of the data
    with pytest.raises(ConfigError, match="not the one"):
        train_consistency_distillation(_teacher(), "mnist", ConsistencyOptions(steps=1), progress=False)
    with pytest.raises(ConfigError, match="same data set"):
        train_consistency_distillation(_teacher(), (torch.zeros(8, 1, 8, 8),), ConsistencyOptions(steps=1), progress=False)
    with pytest.raises(ConfigError, match="teacher"):
        train_consistency_distillation(toy_net(), POINTS, ConsistencyOptions(steps=1), progress=False)
    with pytest.raises(ConfigError, match="metric"):
        ConsistencyOptions(metric="lpips")


def test_samples_save_like_diffusion_samples(tmp_path):
    from PIL import Image

    from genlab.pipeline import save_samples

    spec = ConsistencySpec(dataset="digits", shape=(1, 8, 8))
    f = ConsistencyFunction(small_unet(), spec.sigma_min).eval()
    path = save_samples(generate_consistency(f, spec, 4, steps=2), spec, tmp_path / "grid.png", nrow=2)
    assert Image.open(path).size[0] > 16
