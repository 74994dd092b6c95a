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


# ------------------------------------------------------------------------------------ cross-attention
def test_cross_attention_equals_multi_head_attention_by_hand_with_padding_masked():
    from genlab.nn.unet import CrossAttention

    torch.manual_seed(0)
    att = CrossAttention(channels=8, context_dim=6, num_heads=2, groups=4)
    torch.nn.init.normal_(att.proj.weight)
    x, ctx = torch.randn(3, 8, 4, 4), torch.randn(3, 5, 6)
    mask = torch.tensor([[False] * 5, [False, False, True, True, True], [False] * 4 + [True]])
    out = att(x, ctx, mask)
    # by hand, one sample and one head at a time
    tokens = att.norm(x).permute(0, 2, 3, 1).reshape(3, 16, 8)
    q, (k, v) = att.q(tokens), att.kv(ctx).chunk(2, dim=-1)
    ref = torch.empty(3, 16, 8)
    for b in range(3):
        keep = ~mask[b]
        for hd in range(2):
            sl = slice(4 * hd, 4 * hd + 4)
            w = torch.softmax(q[b, :, sl] @ k[b, keep, sl].T / 2.0, dim=-1)  # √(head size 4) = 2
            ref[b, :, sl] = w @ v[b, keep, sl]
    ref = x + att.proj(ref).reshape(3, 4, 4, 8).permute(0, 3, 1, 2)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    att.keep_attention = True
    torch.testing.assert_close(att(x, ctx, mask), out, rtol=1e-5, atol=1e-5)  # the map-keeping path is the same
    probs = att.attention  # (B, heads, HW, L)
    torch.testing.assert_close(probs.sum(-1), torch.ones(3, 2, 16))
    assert probs[1, :, :, 2:].abs().max() == 0 and probs[2, :, :, 4].abs().max() == 0


def test_unet_with_context_reads_it_only_through_unmasked_tokens():
    torch.manual_seed(0)
    cfg = UNetConfig(image_size=8, base_channels=8, channel_mults=(1, 2), attention_resolutions=(4,), num_res_blocks=1, context_dim=6)
    net = UNet(cfg).eval()
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 500])
    ctx, mask = torch.randn(2, 4, 6), torch.tensor([[False, False, True, True], [False, True, True, True]])
    with torch.no_grad():
        fresh = net(x, t, context=ctx, context_mask=mask)
        torch.testing.assert_close(fresh, net(x, t, context=torch.randn(2, 4, 6), context_mask=mask))  # zero-initialised: identity
        for m in net.modules():
            if type(m).__name__ == "CrossAttention":
                torch.nn.init.normal_(m.proj.weight, std=0.3)
        torch.nn.init.normal_(net.conv_out.weight, std=0.3)
        out = net(x, t, context=ctx, context_mask=mask)
        other = ctx.clone()
        other[mask] = 7.0  # padded tokens
        torch.testing.assert_close(net(x, t, context=other, context_mask=mask), out)
        changed = ctx.clone()
        changed[0, 0] += 1.0  # a real token
        assert not torch.allclose(net(x, t, context=changed, context_mask=mask)[0], out[0])
    assert sum(type(m).__name__ == "CrossAttention" for m in net.modules()) == 3  # encoder level 4, middle, decoder level 4
    with pytest.raises(ConfigError, match="takes a context of width 6"):
        net(x, t)
    with pytest.raises(ConfigError, match="takes no context"):
        UNet(UNetConfig(image_size=8, base_channels=8, channel_mults=(1, 2), attention_resolutions=(4,)))(x, t, context=ctx)
