"""genlab.lora: peft's LoRA adapters on genlab's U-Net, checked against W + (α/r) B A computed by
hand, merge/unmerge, and the safetensors round trip."""

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("peft")

from genlab.errors import CheckpointError, ConfigError  # noqa: E402
from genlab.lora import add_lora, load_lora, lora_disabled, lora_layers, lora_targets, merge_lora, save_lora, trainable_parameters, unmerge_lora  # noqa: E402
from genlab.nn.unet import UNet, UNetConfig  # noqa: E402
from genlab.train import TrainConfig, fit  # noqa: E402


def unet(seed=0):
    torch.manual_seed(seed)
    model = UNet(UNetConfig(image_size=8, base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(4,), groups=4, num_heads=2))
    with torch.no_grad():  # a "pretrained" model: nothing zero-initialised
        for p in model.parameters():
            p.add_(torch.randn(p.shape) * 0.05)
    return model.eval()


def randomise_b(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


X, T = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(5)), torch.tensor([1, 400, 900])


def test_adapters_start_at_the_base_model_and_train_only_r_times_in_plus_out_numbers():
    base, model = unet(), add_lora(unet(), rank=2)
    torch.testing.assert_close(model(X, T), base(X, T), rtol=0, atol=0)
    expected = 0
    for name in lora_targets(base):
        m = base.get_submodule(name)
        if isinstance(m, torch.nn.Linear):
            expected += 2 * (m.in_features + m.out_features)
        else:  # A: k×k conv to r channels, B: 1×1 conv back
            expected += 2 * (m.in_channels * m.kernel_size[0] * m.kernel_size[1] + m.out_channels)
    assert trainable_parameters(model) == expected
    assert all(("lora_" in n) == p.requires_grad for n, p in model.named_parameters())
    assert {n.rsplit(".", 1)[-1] for n in lora_targets(base, ("attention",))} == {"qkv", "proj"}


def test_an_adapted_layer_is_w_plus_scaled_ba():
    model = add_lora(unet(), rank=3, alpha=6.0)
    randomise_b(model)
    lin = model.get_submodule("mid_attn.qkv")
    w, b = lin.base_layer.weight, lin.base_layer.bias
    a_, b_ = lin.lora_A["default"].weight, lin.lora_B["default"].weight
    x = torch.randn(5, w.shape[1])
    torch.testing.assert_close(lin(x), F.linear(x, w + 2.0 * b_ @ a_, b))
    conv = model.get_submodule("mid1.conv1")
    w, bias = conv.base_layer.weight, conv.base_layer.bias
    a_, b_ = conv.lora_A["default"].weight, conv.lora_B["default"].weight  # (r, in, k, k), (out, r, 1, 1)
    delta = (b_.flatten(1) @ a_.flatten(1)).reshape(w.shape)
    h = torch.randn(2, w.shape[1], 4, 4)
    torch.testing.assert_close(conv(h), F.conv2d(h, w + 2.0 * delta, bias, padding=1), rtol=1e-5, atol=1e-5)


def test_merge_keeps_the_output_and_unmerge_restores_the_base_weights():
    model = add_lora(unet(), rank=2)
    randomise_b(model)
    before = model(X, T)
    base_w = model.get_submodule("mid1.conv1").base_layer.weight.detach().clone()
    merge_lora(model)
    assert all(m.merged for m in lora_layers(model))
    torch.testing.assert_close(model(X, T), before, rtol=1e-5, atol=1e-5)
    assert (model.get_submodule("mid1.conv1").base_layer.weight - base_w).abs().max() > 1e-4
    unmerge_lora(model)
    torch.testing.assert_close(model.get_submodule("mid1.conv1").base_layer.weight, base_w, rtol=0, atol=1e-6)
    torch.testing.assert_close(model(X, T), before, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(before, unet()(X, T), atol=1e-4)  # the adapter does change the model
    merge_lora(model)
    with lora_disabled(model):  # the base model exactly, even from a merged state
        torch.testing.assert_close(model(X, T), unet()(X, T), rtol=0, atol=1e-6)
    torch.testing.assert_close(model(X, T), before, rtol=1e-5, atol=1e-5)


def test_save_and_load_round_trip_through_safetensors(tmp_path):
    model = add_lora(unet(), rank=2, kinds=("attention",))
    randomise_b(model)
    path = save_lora(model, tmp_path / "style.safetensors", metadata={"base": "run-1"})
    assert path.stat().st_size < 20_000 and path.with_suffix(".json").is_file()
    fresh = unet()
    info = load_lora(fresh, path)
    assert info["metadata"] == {"base": "run-1"} and info["kinds"] == ["attention"]
    torch.testing.assert_close(fresh(X, T), model(X, T), rtol=0, atol=0)
    with pytest.raises(ConfigError, match="already carries"):
        add_lora(fresh)
    merge_lora(model)
    with pytest.raises(ConfigError, match="unmerge"):
        save_lora(model, tmp_path / "x.safetensors")
    other = UNet(UNetConfig(image_size=8, base_channels=8, channel_mults=(1, 2, 2), num_res_blocks=1, attention_resolutions=(4,), groups=4, num_heads=2))
    with pytest.raises(CheckpointError, match="another network"):
        load_lora(other, path)
    with pytest.raises(CheckpointError, match="no LoRA adapter"):
        load_lora(unet(), tmp_path / "missing.safetensors")


def test_fine_tuning_moves_only_the_adapters():
    model = add_lora(unet(), rank=2).train()
    base = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}

    def loss(m, batch, generator):
        return (m(batch[0], torch.full((len(batch[0]),), 10)) - 1).square().mean()

    result = fit(model, loss, (torch.randn(32, 1, 8, 8),), TrainConfig(steps=20, batch_size=8, lr=1e-2, warmup_steps=0, ema_decay=None), progress=False)
    assert sum(result.losses[-5:]) < sum(result.losses[:5])
    assert all(torch.equal(p, base[n]) for n, p in model.named_parameters() if "lora_" not in n)
    assert any((p != 0).any() for n, p in model.named_parameters() if "lora_B" in n)


def test_bad_options_are_refused():
    with pytest.raises(ConfigError, match="rank"):
        add_lora(unet(), rank=0)
    with pytest.raises(ConfigError, match="unknown LoRA targets"):
        add_lora(unet(), kinds=("everything",))
    with pytest.raises(ConfigError, match="no LoRA adapters"):
        save_lora(unet(), "/tmp/none.safetensors")
