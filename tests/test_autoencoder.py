"""genlab.nn.autoencoder: shapes and padding, the KL term against torch.distributions, the loss by
hand, the latent scale factor, and a round trip that learns on digits."""

import pytest
import torch

from genlab.errors import ConfigError
from genlab.nn.autoencoder import Autoencoder, AutoencoderConfig, autoencoder_loss, latent_scale_factor


@pytest.mark.parametrize("size, latent", [(28, (4, 8, 8)), (32, (4, 8, 8)), (8, (4, 2, 2))])
def test_shapes_and_padding(size, latent):
    ae = Autoencoder(AutoencoderConfig(image_size=size, channels=(8, 16)))
    assert ae.config.latent_shape == latent
    x = torch.rand(3, 1, size, size) * 2 - 1
    mean, logvar = ae.encode(x)
    assert mean.shape == logvar.shape == (3, *latent)
    assert ae.decode(mean).shape == x.shape
    with pytest.raises(ConfigError, match="takes images of shape"):
        ae.encode(torch.zeros(1, 3, size, size))
    with pytest.raises(ConfigError, match="multiples of 8"):
        AutoencoderConfig(channels=(12, 16))


def test_loss_by_hand_with_the_kl_of_torch_distributions():
    torch.manual_seed(0)
    ae = Autoencoder(AutoencoderConfig(image_size=8, channels=(8, 16), kl_weight=0.3))
    x = torch.rand(5, 1, 8, 8) * 2 - 1
    loss = autoencoder_loss(ae, (x,), torch.Generator().manual_seed(1))
    mean, logvar = ae.encode(x)
    eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(1))
    recon = ae.decode(mean + (0.5 * logvar).exp() * eps)
    q = torch.distributions.Normal(mean, (0.5 * logvar).exp())
    kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).flatten(1).sum(1).mean()
    expected = (recon - x).abs().mean() + ((recon - x) ** 2).mean() + 0.3 * kl / 64
    torch.testing.assert_close(loss, expected)


def test_latent_scale_factor_is_one_over_the_latent_std_and_follows_a_rescaled_encoder():
    torch.manual_seed(0)
    ae = Autoencoder(AutoencoderConfig(image_size=8, channels=(8, 16)))
    x = torch.rand(64, 1, 8, 8) * 2 - 1
    last = ae.encoder[-1]
    with torch.no_grad():  # logvar ≈ −30: z = μ, so the factor is a property of the means alone
        last.weight[4:].zero_()
        last.bias[4:].fill_(-30.0)
    means = ae.encode(x)[0].detach().numpy().ravel()
    s = latent_scale_factor(ae, x, torch.Generator().manual_seed(0), batch_size=10)
    assert s == pytest.approx(1 / means.std(ddof=1), rel=1e-5)
    with torch.no_grad():
        last.weight[:4] *= 3.0
        last.bias[:4] *= 3.0
    assert latent_scale_factor(ae, x, torch.Generator().manual_seed(0)) == pytest.approx(s / 3, rel=1e-5)


def test_round_trip_learns_digits():
    from genlab.data import load_digits
    from genlab.train import TrainConfig, fit

    x_train, _ = load_digits("train")
    x_test, _ = load_digits("test")
    torch.manual_seed(0)
    ae = Autoencoder(AutoencoderConfig(image_size=8, channels=(16, 32)))
    fit(ae, autoencoder_loss, (x_train,), TrainConfig(steps=300, batch_size=64, lr=2e-3, warmup_steps=20, seed=0), progress=False)
    with torch.no_grad():
        recon = ae.eval().decode(ae.encode(x_test)[0])
    mse = ((recon - x_test) ** 2).mean()
    baseline = ((x_train.mean(0) - x_test) ** 2).mean()  # the best constant image
    assert mse < 0.25 * baseline, (mse, baseline)  # measured: about 0.16 after 300 steps
