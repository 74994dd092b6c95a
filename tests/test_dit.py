"""The Diffusion Transformer against independent references: loops over patches, a strided
convolution, diffusers' sin-cos tables, hand-written adaLN-Zero / LayerNorm / GELU / attention,
torch.nn.MultiheadAttention, a checkpoint round trip and a short training run."""

import dataclasses
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genlab.data import load_digits
from genlab.diffusion import DiffusionLoss, RectifiedFlow, make_schedule
from genlab.errors import ConfigError
from genlab.nn import DiT, DiTConfig
from genlab.nn.dit import Attention, DiTBlock, patchify, sincos_2d_position_embedding, unpatchify
from genlab.train import TrainConfig, fit, load_model, read_config, save_checkpoint

SMALL = dict(image_size=8, patch_size=2, hidden_size=32, depth=2, num_heads=4)


def _perturbed(model: nn.Module, std: float = 0.1, seed: int = 0) -> nn.Module:
    """Add noise to every parameter, the zero-initialised adaLN-Zero layers included, so that the
    output depends on every input (a fresh DiT outputs zeros)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(std * torch.randn(p.shape, generator=g))
    return model


# ------------------------------------------------------------------------------------ patches
@pytest.mark.parametrize("c,h,w,p", [(1, 8, 8, 2), (3, 12, 8, 4), (2, 28, 28, 7)])
def test_patchify_matches_a_loop_over_patches_and_unpatchify_inverts_it(c, h, w, p):
    x = torch.randn(2, c, h, w)
    tokens = patchify(x, p)
    gw = w // p
    assert tokens.shape == (2, (h // p) * gw, p * p * c)
    for i in range(h // p):
        for j in range(w // p):
            for a in range(p):
                for b in range(p):
                    for ch in range(c):
                        assert torch.equal(tokens[:, i * gw + j, (a * p + b) * c + ch], x[:, ch, i * p + a, j * p + b])
    assert torch.equal(unpatchify(tokens, p, c, h, w), x)
    other = torch.randn_like(tokens)
    assert torch.equal(patchify(unpatchify(other, p, c, h, w), p), other)


def test_linear_patch_embedding_equals_a_strided_convolution():
    torch.manual_seed(0)
    c, d, p = 3, 8, 4
    conv = nn.Conv2d(c, d, kernel_size=p, stride=p)
    x = torch.randn(2, c, 12, 16)
    by_conv = conv(x).flatten(2).transpose(1, 2)  # (B, N, d), N row-major over the 3×4 grid
    weight = conv.weight.permute(0, 2, 3, 1).reshape(d, p * p * c)  # (d, C, p, p) → (d, p, p, C) → (d, p·p·C)
    torch.testing.assert_close(F.linear(patchify(x, p), weight, conv.bias), by_conv, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------ embeddings
@pytest.mark.parametrize("dim,grid", [(8, 2), (16, 4), (128, 7), (64, 14)])
def test_sincos_2d_equals_diffusers(dim, grid):
    from diffusers.models.embeddings import get_2d_sincos_pos_embed

    # diffusers scales the positions by base_size / grid; base_size = grid keeps the integer indices (DiT's table)
    ref = get_2d_sincos_pos_embed(dim, grid, base_size=grid).float()
    torch.testing.assert_close(sincos_2d_position_embedding(dim, grid, grid), ref, rtol=1e-5, atol=1e-5)


def test_sincos_2d_on_a_non_square_grid_equals_diffusers_from_grid():
    from diffusers.models.embeddings import get_2d_sincos_pos_embed_from_grid

    gh, gw, dim = 3, 5, 16
    rows, cols = torch.meshgrid(torch.arange(gh, dtype=torch.float64), torch.arange(gw, dtype=torch.float64), indexing="ij")
    grid = torch.stack([cols, rows])  # diffusers' order: the column coordinate first
    ref = get_2d_sincos_pos_embed_from_grid(dim, grid).float()
    ours = sincos_2d_position_embedding(dim, gh, gw)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    assert torch.equal(ours[0, : dim // 2], ours[gw, : dim // 2])  # same column j = 0, rows 0 and 1: first half equal
    assert torch.equal(ours[0, dim // 2 :], ours[1, dim // 2 :])  # same row i = 0: second half equal


def test_dit_position_table_is_diffusers_and_not_saved():
    from diffusers.models.embeddings import get_2d_sincos_pos_embed

    model = DiT(DiTConfig())  # 28×28, p = 4: a 7×7 grid, d = 128
    ref = get_2d_sincos_pos_embed(128, 7, base_size=7).float()[None]
    torch.testing.assert_close(model.pos_embed, ref, rtol=1e-5, atol=1e-5)
    assert "pos_embed" not in model.state_dict()
    assert "pos_embed" in DiT(DiTConfig(pos_embed="learned")).state_dict()


def test_condition_vector_is_the_timestep_mlp_of_the_sinusoidal_formula_plus_the_label_row():
    d, k = 16, 3
    model = _perturbed(DiT(DiTConfig(num_classes=k, **{**SMALL, "hidden_size": d})))
    t = torch.tensor([0.0, 0.5, 17.0, 999.7])
    pe = torch.tensor([[math.sin(ti * 10_000 ** (-i / (d // 2))) for i in range(d // 2)]
                       + [math.cos(ti * 10_000 ** (-i / (d // 2))) for i in range(d // 2)] for ti in t.tolist()])  # fmt: skip
    lin1, lin2 = model.time_embed.mlp[0], model.time_embed.mlp[2]
    t_emb = F.silu(pe @ lin1.weight.T + lin1.bias) @ lin2.weight.T + lin2.bias
    y = torch.tensor([0, 2, 1, 3])
    with torch.no_grad():
        torch.testing.assert_close(model.condition(t, y), t_emb + model.class_embed.weight[y], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model.condition(t), t_emb + model.class_embed.weight[k], rtol=1e-5, atol=1e-5)
        unconditional = _perturbed(DiT(DiTConfig(**{**SMALL, "hidden_size": d})))
        lin1, lin2 = unconditional.time_embed.mlp[0], unconditional.time_embed.mlp[2]
        torch.testing.assert_close(unconditional.condition(t), F.silu(pe @ lin1.weight.T + lin1.bias) @ lin2.weight.T + lin2.bias, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------ adaLN-Zero
def test_fresh_dit_outputs_zeros_and_every_block_is_the_identity():
    torch.manual_seed(0)
    model = DiT(DiTConfig(num_classes=10))
    x, t, y = torch.randn(3, 1, 28, 28), torch.tensor([3.0, 400.0, 999.0]), torch.tensor([1, 7, 10])
    with torch.no_grad():
        assert torch.equal(model(x, t, y), torch.zeros_like(x))
        h, c = torch.randn(3, 49, 128), torch.randn(3, 128)
        for block in model.blocks:
            assert torch.equal(block(h, c), h)


def _layer_norm(x):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-6)


def _gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def _attention_by_hand(x, qkv: nn.Linear, proj: nn.Linear, heads: int):
    """softmax(Q Kᵀ / √d_head) V for each sample and head, then the output projection."""
    b, n, d = x.shape
    hs = d // heads
    q, k, v = (x @ qkv.weight.T + qkv.bias).split(d, dim=-1)
    out = torch.empty(b, n, d)
    for i in range(b):
        for hd in range(heads):
            sl = slice(hd * hs, (hd + 1) * hs)
            out[i, :, sl] = torch.softmax(q[i, :, sl] @ k[i, :, sl].T / math.sqrt(hs), dim=-1) @ v[i, :, sl]
    return out @ proj.weight.T + proj.bias


def test_dit_block_equals_the_adaln_zero_formula_once_the_modulation_is_not_zero():
    torch.manual_seed(0)
    d, heads = 16, 4
    block = DiTBlock(d, heads, mlp_ratio=2.0)
    nn.init.normal_(block.modulation.weight, std=0.3)
    nn.init.normal_(block.modulation.bias, std=0.3)
    x, c = torch.randn(2, 5, d), torch.randn(2, d)
    mod = F.silu(c) @ block.modulation.weight.T + block.modulation.bias  # (B, 6d)
    beta1, gamma1, alpha1, beta2, gamma2, alpha2 = (mod[:, None, i * d : (i + 1) * d] for i in range(6))  # shift, scale, gate
    h = x + alpha1 * _attention_by_hand(_layer_norm(x) * (1 + gamma1) + beta1, block.attn.qkv, block.attn.proj, heads)
    fc1, fc2 = block.mlp[0], block.mlp[2]
    u = _layer_norm(h) * (1 + gamma2) + beta2
    ref = h + alpha2 * (_gelu_tanh(u @ fc1.weight.T + fc1.bias) @ fc2.weight.T + fc2.bias)
    with torch.no_grad():
        torch.testing.assert_close(block(x, c), ref, rtol=1e-5, atol=1e-5)


def test_attention_equals_torch_multihead_attention_with_copied_weights():
    torch.manual_seed(0)
    d, heads = 16, 4
    att = Attention(d, heads)
    mha = nn.MultiheadAttention(d, heads, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(att.qkv.weight)
        mha.in_proj_bias.copy_(att.qkv.bias)
        mha.out_proj.weight.copy_(att.proj.weight)
        mha.out_proj.bias.copy_(att.proj.bias)
        x = torch.randn(3, 7, d)
        ref, ref_probs = mha(x, x, x, average_attn_weights=False)  # probs (B, heads, N, N)
        torch.testing.assert_close(att(x), ref, rtol=1e-5, atol=1e-5)
        att.keep_attention = True
        torch.testing.assert_close(att(x), ref, rtol=1e-5, atol=1e-5)  # the map-keeping path is the same
        torch.testing.assert_close(att.attention, ref_probs, rtol=1e-5, atol=1e-5)


def test_attention_maps_are_each_blocks_probabilities_and_leave_the_model_as_it_was():
    model = _perturbed(DiT(DiTConfig(num_classes=10, **SMALL))).eval()
    x, t, y = torch.randn(2, 1, 8, 8), torch.tensor([10.0, 600.0]), torch.tensor([3, 10])
    before = model(x, t, y)
    maps = model.attention_maps(x, t, y)
    assert len(maps) == 2 and all(m.shape == (2, 4, 16, 16) for m in maps)  # depth, (B, heads, N, N)
    # the first block's map by hand: its input is patch_embed(patchify(x)) + pos_embed, modulated by c
    with torch.no_grad():
        block, c = model.blocks[0], model.condition(t, y)
        h = model.patch_embed(patchify(x, 2)) + model.pos_embed
        shift, scale = block.modulation(F.silu(c))[:, None, :].chunk(6, dim=-1)[:2]
        q, k, _ = block.attn.qkv(_layer_norm(h) * (1 + scale) + shift).split(32, dim=-1)
        for hd in range(4):
            sl = slice(8 * hd, 8 * hd + 8)
            torch.testing.assert_close(maps[0][:, hd], torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(8), -1), rtol=1e-5, atol=1e-5)
    assert all(not b.attn.keep_attention and b.attn.attention is None for b in model.blocks)
    torch.testing.assert_close(model(x, t, y), before, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------ conditioning and shapes
def test_null_label_and_class_and_time_change_the_output():
    model = _perturbed(DiT(DiTConfig(num_classes=3, **SMALL))).eval()
    x = torch.randn(1, 1, 8, 8).repeat(2, 1, 1, 1)
    with torch.no_grad():
        assert torch.equal(model(x, torch.tensor([5.0, 5.0])), model(x, torch.tensor([5.0, 5.0]), torch.tensor([3, 3])))
        a = model(x, torch.tensor([5.0, 5.0]), torch.tensor([0, 2]))
        assert (a[0] - a[1]).abs().max() > 1e-3
        b = model(x, torch.tensor([10.0, 900.0]), torch.tensor([1, 1]))
        assert (b[0] - b[1]).abs().max() > 1e-3
    assert model.null_label == 3 and DiT(DiTConfig(**SMALL)).null_label is None


@pytest.mark.parametrize(
    "cfg",
    [
        DiTConfig(),
        DiTConfig(image_size=8, patch_size=2, hidden_size=32, depth=2, num_heads=2, pos_embed="learned"),
        DiTConfig(image_size=32, in_channels=3, patch_size=4, hidden_size=64, depth=2, num_classes=10),
        DiTConfig(image_size=8, in_channels=1, out_channels=2, patch_size=2, hidden_size=32, depth=1),  # learned variance
    ],
    ids=["1x28-p4", "1x8-p2-learned", "3x32-p4-classes", "1x8-out2"],
)
def test_shapes_and_gradients(cfg):
    model = _perturbed(DiT(cfg), std=0.02)
    x = torch.randn(3, cfg.in_channels, cfg.image_size, cfg.image_size)
    y = torch.tensor([0, 1, cfg.num_classes]) if cfg.num_classes else None
    out = model(x, torch.tensor([0, 500, 999]), y)
    assert out.shape == (3, cfg.out_channels or cfg.in_channels, cfg.image_size, cfg.image_size)
    out.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


# ------------------------------------------------------------------------------------ checkpoints
@pytest.mark.parametrize("pos_embed", ["sincos", "learned"])
def test_checkpoint_round_trip_gives_identical_outputs(tmp_path, pos_embed):
    cfg = DiTConfig(num_classes=10, mlp_ratio=2.0, pos_embed=pos_embed, **SMALL)
    model = _perturbed(DiT(cfg)).eval()
    save_checkpoint(tmp_path, model, metadata={"note": "dit"})
    loaded, info = load_model(tmp_path)
    assert type(loaded) is DiT and loaded.config == cfg and info["metadata"]["note"] == "dit"
    assert read_config(tmp_path)["model"] == {"class": "DiT", "config": json.loads(json.dumps(dataclasses.asdict(cfg)))}
    x, t, y = torch.randn(4, 1, 8, 8), torch.tensor([1.0, 2.5, 300.0, 999.0]), torch.tensor([0, 5, 9, 10])
    with torch.no_grad():
        assert torch.equal(model(x, t, y), loaded(x, t, y))


def test_fit_with_ema_saves_a_dit_that_loads_with_its_ema_weights(tmp_path):
    x, y = load_digits("test")
    model = DiT(DiTConfig(num_classes=10, **SMALL))
    loss = DiffusionLoss(make_schedule("linear", 1000), conditional=True, cond_drop_prob=0.1, null_label=10)
    result = fit(model, loss, (x, y), TrainConfig(steps=4, batch_size=16, ema_decay=0.9), out_dir=tmp_path, progress=False)
    loaded, _ = load_model(tmp_path)  # the EMA weights
    xs, ts, ys = x[:3], torch.tensor([5.0, 50.0, 500.0]), torch.tensor([0, 4, 10])
    with torch.no_grad():
        assert torch.equal(loaded(xs, ts, ys), result.ema(xs, ts, ys))
        assert not torch.equal(loaded(xs, ts, ys), result.model.eval()(xs, ts, ys))  # and not the raw ones


# ------------------------------------------------------------------------------------ training
def test_tiny_dit_learns_8x8_digits():
    x, _ = load_digits("train")
    model = DiT(DiTConfig(image_size=8, patch_size=2, hidden_size=64, depth=2, num_heads=4, mlp_ratio=2.0))
    loss = DiffusionLoss(make_schedule("linear", 1000), prediction="epsilon")
    result = fit(model, loss, (x,), TrainConfig(steps=150, batch_size=64, lr=2e-3, warmup_steps=10, seed=0), progress=False)
    first, last = result.losses[0], sum(result.losses[-20:]) / 20
    # a fresh DiT predicts ε̂ = 0, so its loss is E[ε²] = 1 (64 · 64 standard normals: ±0.1 is 4.5 standard deviations)
    assert abs(first - 1.0) < 0.1
    assert last < 0.35 * first, (first, last)


def test_dit_trains_on_the_flow_matching_objective():
    x, _ = load_digits("train")
    model = DiT(DiTConfig(image_size=8, patch_size=2, hidden_size=32, depth=1, num_heads=2, mlp_ratio=2.0))
    loss = DiffusionLoss(RectifiedFlow(), prediction="velocity")
    result = fit(model, loss, (x,), TrainConfig(steps=60, batch_size=64, lr=3e-3, warmup_steps=5, seed=0), progress=False)
    first = result.losses[0]
    # a fresh DiT predicts v̂ = 0 and the target is ε − x₀ (ε independent of x₀): E[(ε − x₀)²] = 1 + E[x₀²]
    assert abs(first - (1 + x.square().mean().item())) < 0.15, first
    assert sum(result.losses[-10:]) / 10 < 0.8 * first, (first, result.losses[-10:])


# ------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(image_size=28, patch_size=3), "not divisible by patch size"),
        (dict(hidden_size=130, num_heads=4), "divisible by num_heads"),
        (dict(hidden_size=18, num_heads=3), "divisible by 4 for the 2-D sin-cos"),
        (dict(hidden_size=15, num_heads=3, pos_embed="learned"), "must be even"),
        (dict(pos_embed="rope"), "unknown DiT pos_embed"),
        (dict(depth=0), "depth must be an int >= 1"),
        (dict(patch_size=True), "patch_size must be an int"),
        (dict(num_classes=-1), "num_classes must be an int >= 0"),
        (dict(mlp_ratio=0), "mlp_ratio must be a number > 0"),
    ],
)
def test_bad_configs_raise_one_line_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match) as info:
        DiTConfig(**kwargs)
    assert "\n" not in str(info.value)


def test_wrong_image_shape_is_a_clear_error():
    model = DiT(DiTConfig(**SMALL))
    with pytest.raises(ConfigError, match=r"takes images of shape \(1, 8, 8\)"):
        model(torch.randn(1, 1, 16, 16), torch.tensor([0]))
    DiTConfig(hidden_size=18, num_heads=3, pos_embed="learned")  # not a multiple of 4: fine without sin-cos
