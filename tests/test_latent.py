"""Latent diffusion: fit's frozen models, the pipeline (autoencoder → scaled latents → diffusion →
decode) and `genlab train --latent` end to end on stand-in data."""

import pytest
import torch

from genlab.cli import main
from genlab.errors import ConfigError
from genlab.latent_pipeline import LatentDiffusionModel, encode_dataset, train_autoencoder
from genlab.nn.autoencoder import latent_scale_factor
from genlab.pipeline import DiffusionSpec, TrainOptions, build_model, generate, load_diffusion, train_diffusion
from genlab.train import TrainConfig, fit, load_model

IMAGES = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_fit_saves_frozen_models_untouched_and_resumes(tmp_path):
    from genlab.nn import ToyDenoiser, ToyDenoiserConfig

    frozen = ToyDenoiser(ToyDenoiserConfig())
    before = {k: v.clone() for k, v in frozen.state_dict().items()}
    model = torch.nn.Linear(3, 1)
    loss = lambda m, batch, g: (m(batch[0]) ** 2).mean()  # noqa: E731
    x = (torch.randn(32, 3),)
    fit(model, loss, x, TrainConfig(steps=4, batch_size=8, ckpt_every=2), out_dir=tmp_path, frozen={"extra": frozen}, progress=False)
    loaded, _ = load_model(tmp_path, name="extra", use_ema=False)
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, before[k])
    fit(torch.nn.Linear(3, 1), loss, x, TrainConfig(steps=6, batch_size=8), out_dir=tmp_path, resume=True, frozen={"extra": ToyDenoiser(ToyDenoiserConfig())},
        progress=False)  # the frozen weights also come back from the checkpoint  # fmt: skip
    with pytest.raises(ValueError, match="cannot be named 'model'"):
        fit(model, loss, x, TrainConfig(steps=1), frozen={"model": frozen}, progress=False)


def test_pipeline_trains_on_scaled_latents_and_decodes_images(tmp_path):
    ae = train_autoencoder(IMAGES, dataset="mnist", steps=3, batch_size=16, channels=(8, 16), progress=False).model.eval()
    latents, scale = encode_dataset(ae, IMAGES, seed=0)
    assert latents.shape == (64, 4, 8, 8)
    assert scale == pytest.approx(latent_scale_factor(ae, IMAGES, torch.Generator().manual_seed(0)))
    assert float(latents.double().std()) == pytest.approx(1.0, rel=1e-4)  # the draws the factor was measured on
    spec = DiffusionSpec(dataset="mnist", shape=(4, 8, 8), clip=None, latent={"scale_factor": scale, "image_shape": [1, 28, 28]})
    result = train_diffusion(spec, (latents,), TrainOptions(steps=2, batch_size=16, ckpt_every=0, unet={"base_channels": 16}),
                             out_dir=tmp_path, frozen={"autoencoder": ae}, progress=False)  # fmt: skip
    model, loaded = load_diffusion(tmp_path)
    assert isinstance(model, LatentDiffusionModel) and loaded.latent["scale_factor"] == scale and loaded.image_shape == (1, 28, 28)
    images = generate(model, loaded, 3, steps=2)
    assert images.shape == (3, 1, 28, 28) and images.abs().max() <= 1
    # decoding is D(z / s_f) of the sampled latents
    z = generate(result.best_model.eval(), DiffusionSpec(dataset="mnist", shape=(4, 8, 8), clip=None), 3, steps=2)
    torch.testing.assert_close(images, ae.decode(z / scale).clamp(-1, 1))
    with pytest.raises(ConfigError, match="samples through its autoencoder"):
        generate(build_model(spec), spec, 2, steps=2)


@pytest.fixture
def stand_in_mnist(monkeypatch):
    import genlab.data

    fake = (IMAGES, torch.randint(0, 10, (64,), generator=torch.Generator().manual_seed(1)))
    monkeypatch.setattr(genlab.data, "load_image_dataset", lambda name, split="train": fake)


def test_cli_latent_train_sample_resume(stand_in_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--dataset", "mnist", "--latent", "--ae-steps", "2", "--batch-size", "16", "--base-channels", "16", "--out", str(out)]
    assert main([*argv, "--steps", "2"]) == 0
    printed = capsys.readouterr().out
    assert "stage 1" in printed and "scale factor" in printed and "stage 2" in printed
    assert (out / "autoencoder" / "checkpoints").is_dir() and (out / "samples.png").is_file()
    assert main([*argv, "--steps", "3", "--resume"]) == 0 and "done: 3 steps" in capsys.readouterr().out
    assert main(["sample", "--ckpt", str(out), "--n", "4", "--steps", "2", "--out", str(tmp_path / "s.png")]) == 0
    # a run stopped after stage 1 resumes into a fresh stage 2
    import shutil

    shutil.rmtree(out / "checkpoints")
    assert main([*argv, "--steps", "2", "--resume"]) == 0
    capsys.readouterr()
    assert main(["train-classifier", "--ckpt", str(out), "--steps", "1"]) == 2
    assert "latent diffusion model" in capsys.readouterr().err
    assert main(["train", "--dataset", "digits", "--latent", "--out", str(tmp_path / "d")]) == 2
    assert main(["train", "--dataset", "mnist", "--model", "dcgan", "--latent", "--out", str(tmp_path / "g")]) == 2
