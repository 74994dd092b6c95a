import math

import pytest
import torch

from genlab.errors import ConfigError
from genlab.nn import UNet, UNetConfig, sinusoidal_embedding
from genlab.train import load_model, save_checkpoint


def test_sinusoidal_embedding_matches_formula():
    t = torch.tensor([0, 1, 17, 999])
    dim = 16
    emb = sinusoidal_embedding(t, dim)
    for row, ti in enumerate(t.tolist()):
        for i in range(dim // 2):
            w = 10_000 ** (-i / (dim // 2))
            assert emb[row, i].item() == pytest.approx(math.sin(ti * w), abs=1e-5)
            assert emb[row, dim // 2 + i].item() == pytest.approx(math.cos(ti * w), abs=1e-5)


def test_time_embeddings_are_distinct():
    emb = sinusoidal_embedding(torch.arange(1000), 32).double()
    d = torch.cdist(emb, emb)
    d.fill_diagonal_(float("inf"))
    assert d.min() > 1e-3
    # neighbours are closer than distant timesteps
    assert (emb[500] - emb[501]).norm() < (emb[500] - emb[900]).norm()


@pytest.mark.parametrize(
    "cfg",
    [
        UNetConfig(image_size=8, channel_mults=(1, 2), attention_resolutions=(4,), num_res_blocks=1),
        UNetConfig(image_size=16, num_res_blocks=1),
        UNetConfig(image_size=28, num_res_blocks=1),
        UNetConfig(image_size=32, in_channels=3, channel_mults=(1, 2, 2, 2), attention_resolutions=(8,), num_res_blocks=1, num_classes=10),
    ],
    ids=lambda c: f"{c.in_channels}x{c.image_size}",
)
def test_shapes_and_gradients(cfg):
    model = UNet(cfg)
    x = torch.randn(3, cfg.in_channels, cfg.image_size, cfg.image_size)
    t = torch.tensor([0, 500, 999])
    y = torch.tensor([0, 1, cfg.num_classes]) if cfg.num_classes else None
    out = model(x, t, y)
    assert out.shape == x.shape
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def _trained_like(model: UNet) -> UNet:
    """Randomise the zero-initialised layers so outputs depend on every input."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


def test_output_depends_on_time_and_class():
    model = _trained_like(UNet(UNetConfig(image_size=8, channel_mults=(1, 2), attention_resolutions=(), num_res_blocks=1, num_classes=3))).eval()
    x = torch.randn(1, 1, 8, 8).repeat(2, 1, 1, 1)
    a = model(x, torch.tensor([10, 900]), torch.tensor([1, 1]))
    assert not torch.allclose(a[0], a[1])
    b = model(x, torch.tensor([10, 10]), torch.tensor([0, 3]))
    assert not torch.allclose(b[0], b[1])
    # y=None means the null label
    assert torch.allclose(model(x[:1], torch.tensor([10])), model(x[:1], torch.tensor([10]), torch.tensor([3])))
    assert model.null_label == 3


def test_bad_sizes_are_clear_errors():
    with pytest.raises(ConfigError, match="multiple of 4"):
        UNetConfig(image_size=30)
    model = UNet(UNetConfig(image_size=8, channel_mults=(1, 2), num_res_blocks=1))
    with pytest.raises(ConfigError, match="takes images of shape"):
        model(torch.randn(1, 1, 16, 16), torch.tensor([0]))


def test_checkpoint_round_trip(tmp_path):
    cfg = UNetConfig(image_size=8, channel_mults=(1, 2), attention_resolutions=(4,), num_res_blocks=1, num_classes=10)
    model = _trained_like(UNet(cfg)).eval()
    save_checkpoint(tmp_path, model, metadata={"note": "round trip"})
    loaded, info = load_model(tmp_path)
    assert loaded.config == cfg and info["metadata"]["note"] == "round trip"
    x, t, y = torch.randn(4, 1, 8, 8), torch.tensor([1, 2, 3, 4]), torch.tensor([0, 5, 9, 10])
    assert torch.equal(model(x, t, y), loaded(x, t, y))
