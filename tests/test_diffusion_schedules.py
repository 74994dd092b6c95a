"""Noise schedules: exact values, closed forms, and agreement with diffusers' schedulers."""

import json
import math

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

from genlab.diffusion import (
    ContinuousVP,
    NoiseSchedule,
    RectifiedFlow,
    VEProcess,
    process_from_config,
    cosine_betas,
    extract,
    linear_betas,
    make_schedule,
    quadratic_betas,
    rescale_zero_terminal_snr,
    sigmoid_betas,
    snr,
)
from genlab.errors import ConfigError


def np_alphas_cumprod(betas):
    return np.cumprod(1.0 - np.asarray(betas, dtype=np.float64))


def test_linear_alpha_bar_matches_numpy_cumprod():
    ab = make_schedule("linear", 1000).alphas_cumprod
    ref = np_alphas_cumprod(np.linspace(1e-4, 0.02, 1000))
    assert ab.dtype == torch.float64
    np.testing.assert_allclose(ab.numpy(), ref, rtol=1e-12)
    # ᾱ_100 with t = 0..T-1 (101 factors): 0.8951, not the 0.79 of some tables.
    assert ab[100].item() == pytest.approx(0.8951, abs=5e-5)
    assert ab[-1].item() == pytest.approx(ref[-1], rel=1e-12)


def test_quadratic_alpha_bar_T():
    betas = quadratic_betas(1000)
    ref_betas = np.linspace(np.sqrt(1e-4), np.sqrt(0.02), 1000) ** 2
    np.testing.assert_allclose(betas.numpy(), ref_betas, rtol=1e-12)
    ab_T = make_schedule("quadratic", 1000).alphas_cumprod[-1].item()
    assert ab_T == pytest.approx(np_alphas_cumprod(ref_betas)[-1], rel=1e-12)
    assert ab_T == pytest.approx(7.3e-4, abs=1e-5)


def test_cosine_matches_closed_form_f_ratio():
    T, s = 1000, 0.008

    def f(u):
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    betas = cosine_betas(T, s=s)
    ab = np_alphas_cumprod(betas.numpy())
    closed = np.array([f((t + 1) / T) / f(0) for t in range(T)])
    capped = betas.numpy() >= 0.999
    assert capped.sum() == 1 and capped[-1]  # only the last β hits the cap
    np.testing.assert_allclose(ab[:-1], closed[:-1], rtol=1e-10, atol=1e-15)
    assert betas.max().item() == 0.999


def test_sigmoid_betas_are_flat_at_both_ends():
    b = sigmoid_betas(1000)
    assert b[0].item() == pytest.approx(1e-4 + (0.02 - 1e-4) / (1 + math.exp(6)), rel=1e-12)
    assert b[-1].item() == pytest.approx(1e-4 + (0.02 - 1e-4) / (1 + math.exp(-6)), rel=1e-12)
    assert torch.all(b[1:] > b[:-1])


@pytest.mark.parametrize(
    "ours, diffusers_name",
    [("linear", "linear"), ("quadratic", "scaled_linear"), ("cosine", "squaredcos_cap_v2"), ("sigmoid", "sigmoid")],
)
@pytest.mark.parametrize("zero_snr", [False, True])
def test_betas_equal_diffusers(ours, diffusers_name, zero_snr):
    T = 1000
    kw = {"beta_start": 0.00085, "beta_end": 0.012} if ours == "quadratic" else {}
    ref = DDPMScheduler(
        num_train_timesteps=T, beta_schedule=diffusers_name, rescale_betas_zero_snr=zero_snr, **kw
    ).betas.double()
    betas = make_schedule(ours, T, zero_terminal_snr=zero_snr, **kw).betas
    # diffusers works in float32: agree to float32 resolution. The zero-SNR rescaling forms
    # β = 1 − ᾱ_t/ᾱ_{t-1}, a cancellation that costs float32 about 1e-7 in absolute terms.
    torch.testing.assert_close(betas, ref, rtol=2e-5, atol=1e-6 if zero_snr else 1e-7)


def test_rescale_equals_diffusers_algorithm_in_float64():
    from diffusers.schedulers.scheduling_ddpm import rescale_zero_terminal_snr as reference

    for betas in (linear_betas(1000), cosine_betas(1000), quadratic_betas(500, 0.00085, 0.012)):
        torch.testing.assert_close(rescale_zero_terminal_snr(betas), reference(betas.clone()), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["linear", "cosine", "quadratic"])
def test_zero_terminal_snr(name):
    plain = make_schedule(name, 1000)
    zs = make_schedule(name, 1000, zero_terminal_snr=True)
    assert zs.alphas_cumprod[-1].item() == 0.0
    assert zs.snr[-1].item() == 0.0
    assert zs.betas[-1].item() == pytest.approx(1.0, abs=1e-12)
    assert zs.alphas_cumprod[0].item() == pytest.approx(plain.alphas_cumprod[0].item(), rel=1e-12)
    # Algorithm 1: √ᾱ is an affine map of the old √ᾱ.
    old, new = plain.sqrt_alphas_cumprod.numpy(), zs.sqrt_alphas_cumprod.numpy()
    slope, intercept = np.polyfit(old, new, 1)
    np.testing.assert_allclose(new, slope * old + intercept, atol=1e-12)
    assert torch.all(zs.alphas_cumprod[1:] < zs.alphas_cumprod[:-1])


def test_rescale_is_identity_on_its_output():
    b = rescale_zero_terminal_snr(linear_betas(100))
    torch.testing.assert_close(rescale_zero_terminal_snr(b), b, rtol=0, atol=1e-12)


def test_schedule_fields_from_definitions():
    betas = np.linspace(0.01, 0.3, 12)
    s = NoiseSchedule.from_betas(torch.tensor(betas))
    ab = np_alphas_cumprod(betas)
    ab_prev = np.concatenate([[1.0], ab[:-1]])
    post_var = betas * (1 - ab_prev) / (1 - ab)
    expected = {
        "alphas": 1 - betas,
        "alphas_cumprod": ab,
        "alphas_cumprod_prev": ab_prev,
        "sqrt_alphas_cumprod": np.sqrt(ab),
        "sqrt_one_minus_alphas_cumprod": np.sqrt(1 - ab),
        "posterior_variance": post_var,
        "posterior_log_variance_clipped": np.log(np.concatenate([post_var[1:2], post_var[1:]])),
        "posterior_mean_coef1": betas * np.sqrt(ab_prev) / (1 - ab),
        "posterior_mean_coef2": np.sqrt(1 - betas) * (1 - ab_prev) / (1 - ab),
    }
    for name, ref in expected.items():
        value = getattr(s, name)
        assert value.dtype == torch.float64, name
        np.testing.assert_allclose(value.numpy(), ref, rtol=1e-12, err_msg=name)
    assert s.posterior_variance[0].item() == 0.0
    np.testing.assert_allclose(snr(s.alphas_cumprod).numpy(), ab / (1 - ab), rtol=1e-12)
    assert len(s) == s.num_timesteps == 12
    assert set(s.to_dict()) == set(expected) | {"betas"}


def test_schedule_is_frozen():
    s = make_schedule("linear", 10)
    with pytest.raises(AttributeError):
        s.betas = torch.zeros(10)


def test_extract_shapes_and_values():
    s = make_schedule("linear", 50)
    x = torch.zeros(3, 1, 4, 4)
    t = torch.tensor([0, 7, 49])
    c = extract(s.alphas_cumprod, t, x)
    assert c.shape == (3, 1, 1, 1) and c.dtype == torch.float32
    torch.testing.assert_close(c.flatten(), s.alphas_cumprod[t].float())
    assert extract(s.alphas_cumprod, 7, x).shape == ()


@pytest.mark.parametrize("bad", [torch.tensor([0.1, 0.0]), torch.tensor([0.5, 1.5]), torch.ones(2, 2) * 0.1])
def test_bad_betas_raise(bad):
    with pytest.raises(ConfigError):
        NoiseSchedule.from_betas(bad)


def test_unknown_schedule_name_raises():
    with pytest.raises(ConfigError, match="cosine"):
        make_schedule("cosin")


# ------------------------------------------------------------------------------------------
# T is honoured; processes as data
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["linear", "quadratic", "sigmoid", "cosine"])
@pytest.mark.parametrize("T", [50, 100, 250, 500, 2000])
def test_terminal_snr_does_not_depend_on_T(name, T):
    # betas scaled by 1000/T (improved DDPM): Σβ ≈ the same, so ᾱ_{T-1} stays tiny for small T.
    ref, s = make_schedule(name, 1000), make_schedule(name, T)
    ab_T, ref_T = s.alphas_cumprod[-1].item(), ref.alphas_cumprod[-1].item()
    if name == "cosine":
        assert ab_T < 1e-6 and ref_T < 1e-6  # cosine ends near 0 by construction (capped last β)
        return
    # Σβ is what the scaling preserves (to O(1/T) for the curved schedules) …
    assert s.betas.sum().item() == pytest.approx(ref.betas.sum().item(), rel=0.02)
    # … so the terminal SNR is never much worse than at T = 1000 (smaller T: larger β, lower ᾱ_T;
    # the unscaled T = 100 linear schedule ended at ᾱ = 0.36, far from noise).
    assert ab_T <= 1.05 * ref_T, (ab_T, ref_T)
    assert ab_T < 1e-3  # sampling from N(0, I) is justified: the data weight √ᾱ_T is < 3 %


def test_scaled_betas_follow_improved_ddpm():
    b = linear_betas(100)
    np.testing.assert_allclose(b.numpy(), np.linspace(1e-4 * 10, 0.02 * 10, 100), rtol=1e-12)
    assert linear_betas(10).max().item() == 0.999  # 0.02 · 100 = 2 is capped
    np.testing.assert_allclose(quadratic_betas(1000).numpy(), (np.linspace(1e-2, np.sqrt(0.02), 1000)) ** 2, rtol=1e-12)


@pytest.mark.parametrize("bad", [dict(beta_start=float("nan")), dict(beta_start=-1e-4), dict(beta_end=1e-5), dict(beta_end=2.0)])
def test_bad_beta_arguments_raise(bad):
    with pytest.raises(ConfigError, match="beta_"):
        make_schedule("linear", 1000, **bad)


@pytest.mark.parametrize("T", [0, -5, 2.5, True])
def test_bad_T_raises(T):
    with pytest.raises(ConfigError, match="T"):
        make_schedule("linear", T)


def test_schedule_is_a_process():
    s = make_schedule("cosine", 50)
    a, sig = s.alpha_sigma(torch.tensor([-1, 0, 49]))
    assert a[0].item() == 1.0 and sig[0].item() == 0.0  # t = −1 is the data
    torch.testing.assert_close(a[1:] ** 2, s.alphas_cumprod[[0, 49]], rtol=1e-12, atol=0)
    torch.testing.assert_close(a**2 + sig**2, torch.ones(3, dtype=torch.float64), rtol=1e-12, atol=0)
    # between indices, log σ̂ (σ̂ = σ/α) is interpolated linearly: σ̂(2.5) is the geometric mean of σ̂_2 and σ̂_3
    ab = s.alphas_cumprod
    level = lambda k: ((1 - ab[k]) / ab[k]).sqrt()  # noqa: E731
    a25, s25 = s.alpha_sigma(2.5)
    torch.testing.assert_close(s25 / a25, (level(2) * level(3)).sqrt(), rtol=1e-12, atol=0)
    torch.testing.assert_close(a25**2 + s25**2, torch.tensor(1.0, dtype=torch.float64), rtol=1e-12, atol=0)
    with pytest.raises(ConfigError, match="fractional"):
        s.alpha_sigma(-0.5)
    with pytest.raises(ConfigError, match="-1..49"):
        s.alpha_sigma(50)


@pytest.mark.parametrize(
    "process",
    [make_schedule("sigmoid", 30, zero_terminal_snr=True), ContinuousVP("linear", 0.2, 15.0), ContinuousVP("cosine"), VEProcess(40.0), RectifiedFlow()],
    ids=lambda p: p.kind,
)
def test_process_config_round_trip(process):
    cfg = json.loads(json.dumps(process.config()))  # through JSON, as in a checkpoint
    again = process_from_config(cfg)
    t = torch.tensor([-1, 0, 7, 29]) if process.discrete else torch.tensor([0.0, 0.1, 0.5, 1.0], dtype=torch.float64) * process.t_max
    for u, v in zip(process.alpha_sigma(t), again.alpha_sigma(t)):
        assert torch.equal(u, v)
    assert type(again) is type(process)


def test_continuous_processes_closed_forms():
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    a, s = ContinuousVP("linear", 0.1, 20.0).alpha_sigma(t)
    # Song et al. (2021), VP-SDE: log α(t) = −¼ t² (β_max − β_min) − ½ t β_min
    np.testing.assert_allclose(a.numpy(), np.exp(-0.25 * t.numpy() ** 2 * 19.9 - 0.05 * t.numpy()), rtol=1e-12)
    np.testing.assert_allclose((a**2 + s**2).numpy(), 1.0, rtol=1e-12)
    a, s = RectifiedFlow().alpha_sigma(t)
    assert torch.equal(a, 1 - t) and torch.equal(s, t)
    assert ContinuousVP("cosine").alpha_sigma(1.0)[0].item() == pytest.approx(0.0, abs=1e-15)  # zero terminal SNR


@pytest.mark.parametrize("bad", [{"kind": "nope"}, {"kind": "ve", "sigma_max": -1}, {"kind": "discrete_vp"}, {"kind": "continuous_vp", "schedule": "x"}, [1, 2]])
def test_bad_process_configs_raise(bad):
    with pytest.raises(ConfigError):
        process_from_config(bad)
