"""genlab.nn.stylegan: modulated convolution against per-sample weights, demodulation's unit
variance, style mixing, truncation, noise inputs."""

import pytest
import torch
import torch.nn.functional as F

from genlab.errors import ConfigError
from genlab.nn.stylegan import ModulatedConv2d, StyleGANConfig, StyleGenerator, style_mix, truncate


def _small(**kw) -> StyleGenerator:
    torch.manual_seed(0)
    return StyleGenerator(StyleGANConfig(latent_dim=8, style_dim=8, mapping_layers=2, width=4, **kw)).eval()


def _randomise_styles(g: torch.nn.Module) -> None:
    """The affine maps start at s = 1 (weights 0): give them weights so that styles matter."""
    for m in g.modules():
        if isinstance(m, ModulatedConv2d):
            torch.nn.init.normal_(m.affine.weight, std=0.5)


@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_equals_a_convolution_with_per_sample_weights(demodulate):
    torch.manual_seed(1)
    conv = ModulatedConv2d(3, 5, 3, style_dim=4, demodulate=demodulate)
    _randomise_styles(conv)
    x, w = torch.randn(4, 3, 9, 9), torch.randn(4, 4)
    out = conv(x, w)
    for n in range(4):  # the paper's formulas, one sample at a time
        s = conv.affine(w[n])
        weight = conv.weight * s[None, :, None, None]
        if demodulate:
            weight = weight / torch.sqrt(weight.square().sum((1, 2, 3), keepdim=True) + 1e-8)
        ref = F.conv2d(x[n : n + 1], weight, padding=1)
        torch.testing.assert_close(out[n : n + 1], ref, rtol=1e-5, atol=1e-5)


def test_demodulation_gives_unit_variance_for_unit_variance_inputs():
    # y_o = Σ w''_oik x_ik with Σ_ik w''² = 1: Var[y_o] = 1 exactly for i.i.d. unit-variance x.
    torch.manual_seed(2)
    conv = ModulatedConv2d(8, 6, 3, style_dim=4)
    _randomise_styles(conv)
    x = torch.randn(1, 8, 258, 258)
    with torch.no_grad():
        y = conv(x, torch.randn(1, 4))[0, :, 1:-1, 1:-1]  # the border sees zero padding
    var = y.square().mean((1, 2))
    # 65 536 pixels per channel, neighbours correlated over a 3×3 window: SE of the mean of y² is
    # about √(2·9/65 536) ≈ 0.017; 5 SE
    assert torch.all((var - 1).abs() < 0.085), var


@pytest.mark.parametrize("size, ws", [(28, 6), (32, 8)])
def test_shapes_range_and_number_of_styles(size, ws):
    g = _small(image_size=size, channels=3)
    assert g.num_ws == ws
    x = g(g.sample_latent(5, torch.Generator().manual_seed(0)))
    assert x.shape == (5, 3, size, size) and torch.isfinite(x).all()


def test_different_latents_give_different_images_from_the_start():
    # A generator whose styles barely depend on z starts collapsed (every z, one image) and GAN
    # training does not leave that state: the mapping network must keep the spread of z (He init)
    # and the affine maps must pass it on. PyTorch's default init shrinks w to ~2 % of z's spread.
    torch.manual_seed(0)
    g = StyleGenerator(StyleGANConfig(width=16)).eval()
    z = torch.randn(256, 64, generator=torch.Generator().manual_seed(1))
    w = g.mapping(z)
    assert w.std(0).mean() > 0.25
    with torch.no_grad():
        x = g(z, noise_fn=None)
    assert x.std(0).mean() > 0.5 * x.std()  # across samples, compared with the spread within an image


def test_style_mixing_takes_coarse_styles_from_one_latent_and_fine_from_the_other():
    g = _small()
    _randomise_styles(g)
    za, zb = torch.randn(3, 8), torch.randn(3, 8)
    wa, wb = g.broadcast(g.mapping(za)), g.broadcast(g.mapping(zb))
    with torch.no_grad():
        only_a, only_b = g(za, noise_fn=None), g(zb, noise_fn=None)
        torch.testing.assert_close(g.synthesis(style_mix(g, wa, wb, g.num_ws), None), only_a)
        torch.testing.assert_close(g.synthesis(style_mix(g, wa, wb, 0), None), only_b)
        mixed = style_mix(g, wa, wb, 2)
        assert torch.equal(mixed[:, :2], wa[:, :2]) and torch.equal(mixed[:, 2:], wb[:, 2:])
        image = g.synthesis(mixed, None)
    assert not torch.allclose(image, only_a) and not torch.allclose(image, only_b)
    with pytest.raises(ConfigError, match="crossover"):
        style_mix(g, wa, wb, g.num_ws + 1)


def test_truncation():
    g = _small()
    _randomise_styles(g)
    w_avg = g.mean_w(256, torch.Generator().manual_seed(1))
    z = torch.randn(4, 8)
    with torch.no_grad():
        torch.testing.assert_close(g(z, psi=1.0, noise_fn=None), g(z, noise_fn=None))
        average = g(z, psi=0.0, w_avg=w_avg, noise_fn=None)  # every z gives the average image
    torch.testing.assert_close(average, average[:1].expand_as(average))
    w = g.mapping(z)
    torch.testing.assert_close((truncate(w, w_avg, 0.3) - w_avg).norm(dim=1), 0.3 * (w - w_avg).norm(dim=1))
    with pytest.raises(ConfigError, match="w_avg"):
        g(z, psi=0.5)
    with pytest.raises(ConfigError, match="psi"):
        truncate(w, w_avg, 1.5)


def test_noise_inputs_change_details_only_when_their_strength_is_not_zero():
    g = _small()
    z = torch.randn(2, 8)
    gen = lambda seed: (lambda t: torch.randn(t.shape, generator=torch.Generator().manual_seed(seed)))  # noqa: E731
    with torch.no_grad():
        torch.testing.assert_close(g(z, noise_fn=gen(0)), g(z, noise_fn=None))  # strengths start at 0
        for layer in g.layers:
            layer.noise_strength.fill_(0.5)
        a, b = g(z, noise_fn=gen(0)), g(z, noise_fn=gen(1))
        torch.testing.assert_close(a, g(z, noise_fn=gen(0)))
    assert not torch.allclose(a, b)
    shapes = []
    g(z, noise_fn=lambda t: shapes.append(tuple(t.shape)) or torch.zeros_like(t))
    assert shapes == [(2, 1, 7, 7)] + [(2, 1, 14, 14)] * 2 + [(2, 1, 28, 28)] * 2


def test_training_mode_mixes_styles_from_the_global_rng():
    g = _small(mixing_prob=1.0)
    _randomise_styles(g)
    z = torch.randn(3, 8)
    with torch.no_grad():
        plain = g(z, noise_fn=None)
        g.train()
        torch.manual_seed(5)
        a = g(z, noise_fn=None)
        torch.manual_seed(5)
        b = g(z, noise_fn=None)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, plain)


def test_config_and_input_errors_in_one_line():
    with pytest.raises(ConfigError, match="28×28 or 32×32"):
        StyleGANConfig(image_size=64)
    with pytest.raises(ConfigError, match="mixing_prob"):
        StyleGANConfig(mixing_prob=2.0)
    g = _small()
    with pytest.raises(ConfigError, match="ws must have shape"):
        g.synthesis(torch.zeros(2, 3, 8))
