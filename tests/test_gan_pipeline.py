"""genlab.gan_pipeline: the four GAN recipes train on the engine, resume bit for bit, reload from
their checkpoints, and sample reproducibly per (seed, index)."""

import pytest
import torch

from genlab.errors import CheckpointError, ConfigError
from genlab.gan_pipeline import GAN_MODELS, GANSpec, GANTrainOptions, build_gan, gan_generate, is_gan_checkpoint, load_gan, train_gan
from genlab.nn.stylegan import StyleGenerator
from genlab.train import load_model

IMAGES = torch.rand(96, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1


def _run(model, out=None, crash_at=None, resume=False, steps=8):
    spec = GANSpec(model=model, latent_dim=8, width=4)
    options = GANTrainOptions(steps=steps, batch_size=8, seed=3, ckpt_every=3, sample_every=1 if crash_at else 0)

    def crash(generator, step):
        if step == crash_at:
            raise KeyboardInterrupt

    return train_gan(spec, IMAGES, options, out_dir=out, resume=resume, sample_fn=crash if crash_at else None, progress=False)


@pytest.mark.parametrize("model", list(GAN_MODELS))
def test_each_recipe_resumes_bit_for_bit(tmp_path, model):
    full = _run(model)
    r = GAN_MODELS[model]
    assert int(next(iter(full.optimizers["discriminator"].state.values()))["step"]) == 8 * r.n_critic
    with pytest.raises(KeyboardInterrupt):
        _run(model, tmp_path, crash_at=5)  # after the step-3 checkpoint
    resumed = _run(model, tmp_path, resume=True)
    assert resumed.history == full.history
    for name in ("generator", "discriminator"):  # spectral norm's power-iteration vectors included
        for (k, a), b in zip(full.models[name].state_dict().items(), resumed.models[name].state_dict().values()):
            assert torch.equal(a, b), (name, k)
    # the checkpoint rebuilds both networks from JSON, and the generator samples the same images
    disc, _ = load_model(tmp_path, name="discriminator", use_ema=False)
    assert torch.equal(disc(IMAGES[:4]), resumed.models["discriminator"].eval()(IMAGES[:4]))
    generator, spec = load_gan(tmp_path)
    assert spec.model == model and is_gan_checkpoint(tmp_path)
    assert torch.equal(gan_generate(generator, 5, seed=1), gan_generate(resumed.emas["generator"].shadow, 5, seed=1))


def test_recipes_build_what_their_papers_say():
    spec = lambda m: GANSpec(model=m, latent_dim=8, width=4)  # noqa: E731
    g, d = build_gan(spec("stylegan"))
    assert isinstance(g, StyleGenerator)
    def parametrized(net):
        return any(hasattr(m, "parametrizations") for m in net.modules())
    assert parametrized(build_gan(spec("sngan"))[1]) and not parametrized(build_gan(spec("dcgan"))[1])
    batch_norm = lambda net: any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())  # noqa: E731
    assert batch_norm(build_gan(spec("dcgan"))[1]) and not batch_norm(build_gan(spec("wgan-gp"))[1])
    assert GAN_MODELS["wgan-gp"].n_critic == 5 and GAN_MODELS["wgan-gp"].gp_weight == 10.0


@pytest.mark.parametrize("model", ["dcgan", "stylegan"])
def test_sample_i_depends_on_seed_and_index_only(model):
    torch.manual_seed(0)
    g, _ = build_gan(GANSpec(model=model, latent_dim=8, width=4))
    if model == "stylegan":
        for layer in g.layers:  # make the noise inputs matter
            layer.noise_strength.data.fill_(0.5)
    a = gan_generate(g, 7, seed=2, batch_size=7)
    b = gan_generate(g, 7, seed=2, batch_size=3)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)  # float rounding of kernels chosen by batch size
    torch.testing.assert_close(gan_generate(g, 3, seed=2), a[:3], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(gan_generate(g, 3, seed=3), a[:3])


def test_truncation_only_for_stylegan_and_clear_errors(tmp_path):
    torch.manual_seed(0)
    g, _ = build_gan(GANSpec(model="dcgan", latent_dim=8, width=4))
    with pytest.raises(ConfigError, match="StyleGAN"):
        gan_generate(g, 2, psi=0.5)
    s, _ = build_gan(GANSpec(model="stylegan", latent_dim=8, width=4))
    for m in s.modules():  # styles that depend on w, so that ψ = 0 visibly collapses them
        if hasattr(m, "affine"):
            torch.nn.init.normal_(m.affine.weight, std=0.5)
    for layer in s.layers:
        layer.noise_strength.data.zero_()
    avg = gan_generate(s, 4, psi=0.0)
    torch.testing.assert_close(avg, avg[:1].expand_as(avg))
    with pytest.raises(ConfigError, match="28×28 or 32×32"):
        GANSpec(shape=(1, 8, 8))
    with pytest.raises(ConfigError, match="unknown GAN model"):
        GANSpec(model="biggan")
    with pytest.raises(ConfigError, match="set up for"):
        train_gan(GANSpec(latent_dim=8, width=4), torch.zeros(4, 3, 32, 32), GANTrainOptions(steps=1), progress=False)
    with pytest.raises(CheckpointError):
        load_gan(tmp_path)  # nothing there
