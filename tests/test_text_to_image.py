"""Text-to-image: the prompt-reading U-Net, its null condition, checkpoints of nested configs, the
caption/prompt plumbing of genlab.text_pipeline, and the CLI's --text / --prompt."""

import json

import numpy as np
import pytest
import torch

from genlab.cli import main
from genlab.data.captions import ATTRIBUTES, CaptionScheme, measure_attributes
from genlab.diffusion import ClassifierFreeGuidance, DiffusionLoss, NetworkDenoiser, make_schedule
from genlab.errors import CheckpointError, ConfigError
from genlab.nn.text_encoder import TextEncoderConfig
from genlab.nn.text_unet import NULL_PROMPT_ID, TextConditionedUNet, TextConditionedUNetConfig
from genlab.nn.unet import UNetConfig
from genlab.pipeline import DiffusionSpec, TrainOptions, generate, load_diffusion, train_diffusion
from genlab.text_pipeline import caption_ids, judge_prompts, prompt_ids, text_scheme, text_setup, text_tokenizer
from genlab.train.checkpoint import build_model, model_spec


def strokes(n=60, seed=0):
    """Bars of random thickness, slant and height on 16×16: attributes that vary across images."""
    g = torch.Generator().manual_seed(seed)
    x = -torch.ones(n, 1, 16, 16)
    for i in range(n):
        w, h = int(torch.randint(1, 5, (), generator=g)), int(torch.randint(5, 15, (), generator=g))
        shear = float(torch.rand((), generator=g) * 1.2 - 0.6)
        top = (16 - h) // 2
        for r in range(top, top + h):
            c = int(round(6 + shear * (top + h / 2 - r)))
            x[i, 0, r, max(c, 0) : max(c + w, 0)] = 1.0
    return x, torch.arange(n) % 10


@pytest.fixture(scope="module")
def text():
    return text_setup(strokes()[0])


def randomised(model, seed=0):
    """Weights drawn at random: the zero-initialised output and cross-attention projections of a
    fresh model would make it ignore its input and its prompt."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model.eval()


def tiny_model(text, **unet):
    tok = text_tokenizer(text)
    cfg = UNetConfig(image_size=16, base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(8,), num_heads=2, groups=4, **unet)
    return TextConditionedUNet(TextConditionedUNetConfig(unet=cfg, text=TextEncoderConfig(vocab_size=tok.vocab_size, max_length=tok.max_length,
                                                                                          width=16, layers=1, heads=2)))  # fmt: skip


def test_the_null_label_is_the_empty_prompt_and_prompts_change_the_prediction(text):
    model = randomised(tiny_model(text))
    x, t = torch.randn(3, 1, 16, 16), torch.tensor([10, 500, 900])
    empty = prompt_ids(text, "", 3)
    null = torch.full_like(empty, NULL_PROMPT_ID)
    assert torch.equal(model(x, t, null), model(x, t, empty))
    assert torch.equal(model(x, t, None), model(x, t, empty))
    seven, thin_seven = model(x, t, prompt_ids(text, "7", 3)), model(x, t, prompt_ids(text, "細い 7", 3))
    assert (seven - model(x, t, empty)).abs().max() > 1e-5 and (seven - thin_seven).abs().max() > 1e-5
    # padding is masked out of attention: what [PAD] embeds to cannot change a padded prompt's prediction
    ids = prompt_ids(text, "細い 7", 3)
    assert (ids == NULL_PROMPT_ID).any()
    with torch.no_grad():
        model.text_encoder.tokens.weight[NULL_PROMPT_ID] += 5.0
    assert torch.allclose(model(x, t, ids), thin_seven, atol=1e-6)


def test_cross_attention_maps_are_distributions_over_the_real_tokens(text):
    model = randomised(tiny_model(text))
    x, t, ids = torch.randn(2, 1, 16, 16), torch.tensor([100, 700]), prompt_ids(text, "太い 右に傾いた 7", 2)
    maps = model.cross_attention_maps(x, t, ids)
    assert list(maps) == [8]  # the 8×8 level (attention_resolutions) and the middle, also 8×8
    for side, m in maps.items():
        assert m.shape == (2, 8, side, side)
        torch.testing.assert_close(m.sum(1), torch.ones(2, side, side))
        assert torch.equal(m[:, ids[0] == NULL_PROMPT_ID], torch.zeros_like(m[:, ids[0] == NULL_PROMPT_ID]))
    assert all(b.attention is None and not b.keep_attention for b in model.modules() if hasattr(b, "keep_attention"))
    torch.testing.assert_close(model(x, t, ids), randomised(tiny_model(text))(x, t, ids))  # the maps do not change the model


def test_cfg_on_prompts_mixes_the_prompted_and_empty_predictions(text):
    """w = 0 is the model under the empty prompt, w = 1 the model itself, and w is affine in between."""
    model = randomised(tiny_model(text))
    d = NetworkDenoiser(model, make_schedule("linear", 1000), "epsilon")
    x, t, ids = torch.randn(2, 1, 16, 16), torch.tensor([300, 300]), prompt_ids(text, "太い 3", 2)
    cond, uncond = d(x, t, ids), d(x, t, prompt_ids(text, "", 2))
    assert torch.allclose(ClassifierFreeGuidance(d, 0.0, NULL_PROMPT_ID)(x, t, ids), uncond, atol=1e-6)
    assert torch.allclose(ClassifierFreeGuidance(d, 2.5, NULL_PROMPT_ID)(x, t, ids), uncond + 2.5 * (cond - uncond), atol=1e-5)


def test_condition_dropout_replaces_whole_prompts_by_the_null_prompt(text):
    captured = []

    class Spy(torch.nn.Module):
        def forward(self, x, t, y=None):
            captured.append(y.clone())
            return torch.zeros_like(x)

    ids = prompt_ids(text, "太い 右に傾いた 7", 400)
    loss = DiffusionLoss(make_schedule("linear", 1000), conditional=True, cond_drop_prob=0.25, null_label=NULL_PROMPT_ID)
    loss(Spy(), (torch.zeros(400, 1, 4, 4), ids), torch.Generator().manual_seed(0))
    y = captured[0]
    dropped = (y == NULL_PROMPT_ID).all(1)
    assert torch.equal(y[~dropped], ids[~dropped])  # a prompt is kept whole or dropped whole
    assert 0.15 < dropped.float().mean() < 0.35


def test_nested_config_round_trips_and_bad_nested_values_are_refused(text):
    model = tiny_model(text)
    spec = json.loads(json.dumps(model_spec(model)))
    rebuilt = build_model(spec)
    assert rebuilt.config == model.config and rebuilt.config.unet.context_dim == 16
    spec["config"]["unet"]["base_channels"] = "eight"
    with pytest.raises(CheckpointError, match="unet"):
        build_model(spec)
    with pytest.raises(ConfigError, match="context_dim"):
        TextConditionedUNetConfig(unet=UNetConfig(context_dim=5), text=TextEncoderConfig(width=16, heads=2))


def test_random_captions_name_a_subset_that_parses_back_to_the_measurements():
    x, y = strokes(200)
    scheme = CaptionScheme.fit(x)
    bins = scheme.bins(x)
    full = scheme.random_captions(x, y, keep_prob=1.0, langs=("en",))
    assert full == scheme.captions(x, y, lang="en")
    assert scheme.random_captions(x, y, keep_prob=0.0) == [str(int(v)) for v in y]
    mixed = scheme.random_captions(x, y, keep_prob=0.5, seed=3)
    assert mixed == scheme.random_captions(x, y, keep_prob=0.5, seed=3)  # fixed by the seed
    named = 0
    for i, c in enumerate(mixed):
        label, attrs = scheme.parse(c)
        assert label == int(y[i]) and all(attrs[a] == bins[a][i] for a in attrs)
        named += len(attrs)
    assert 0.35 < named / (3 * len(mixed)) < 0.65
    japanese = sum(any(ord(ch) > 0x3000 for ch in c) for c in mixed if len(c.split()) > 1)
    assert 0 < japanese < sum(len(c.split()) > 1 for c in mixed)  # both languages occur
    assert CaptionScheme.from_dict(json.loads(json.dumps(scheme.to_dict()))) == scheme


def test_prompt_ids_refuse_unknown_words_and_wrong_counts(text):
    ids = prompt_ids(text, "thick 7", 3)
    assert ids.shape == (3, 8) and torch.equal(ids[0], ids[2])
    assert text_tokenizer(text).decode(ids[:1]) == ["thick 7"]
    with pytest.raises(ConfigError, match="never saw: fat"):
        prompt_ids(text, "fat 7", 2)
    with pytest.raises(ConfigError, match="one per sample"):
        prompt_ids(text, ["7", "3"], 3)
    with pytest.raises(ConfigError, match="longer than"):
        prompt_ids(text, "太い 細い 小さい 大きい 右に傾いた 左に傾いた 7 3", 1)


def test_judge_prompts_scores_real_images_against_their_own_captions(text):
    """Brute force: images judged against captions written from their own measurements score 100 %,
    against another image's captions about chance."""
    x, y = strokes(300, seed=1)
    scheme = text_scheme(text)
    own = scheme.captions(x, y, lang="ja")
    logits = torch.nn.functional.one_hot(y, 10).double()
    verdict = judge_prompts(x, own, text, logits)
    assert all(verdict[a]["accuracy"] == 1.0 and verdict[a]["n"] == 300 for a in (*ATTRIBUTES, "class"))
    perm = torch.randperm(300, generator=torch.Generator().manual_seed(0))
    shuffled = judge_prompts(x, [own[i] for i in perm], text)
    values = measure_attributes(x)
    expected = {a: float(np.mean(scheme.bins(x)[a] == scheme.bins(x[perm])[a])) for a in ATTRIBUTES}
    assert all(abs(shuffled[a]["accuracy"] - expected[a]) < 1e-12 for a in ATTRIBUTES) and "class" not in shuffled
    assert np.isfinite(values["slant"]).all()
    partial = judge_prompts(x[:2], ["7", "細い"], text)
    assert partial["thickness"]["n"] == 1 and partial["slant"]["n"] == 0 and np.isnan(partial["slant"]["accuracy"])


def test_train_save_load_and_generate_from_prompts(text, tmp_path):
    x, y = strokes(64)
    ids, captions = caption_ids(text, x, y)
    spec = DiffusionSpec(dataset="digits", shape=(1, 16, 16), text=text)
    unet = {"base_channels": 8, "channel_mults": (1, 2), "num_res_blocks": 1, "groups": 4, "num_heads": 2, "attention_resolutions": (8,)}
    result = train_diffusion(spec, (x, ids), TrainOptions(steps=3, batch_size=16, ckpt_every=3, unet=unet), out_dir=tmp_path, progress=False)
    model, loaded = load_diffusion(tmp_path)
    assert isinstance(model, TextConditionedUNet) and loaded.text == text and loaded.null_label == NULL_PROMPT_ID
    a = generate(model, loaded, 4, prompts="太い 7", guidance=3.0, steps=3, seed=1)
    b = generate(result.ema.eval(), spec, 4, prompts=["太い 7"] * 4, guidance=3.0, steps=3, seed=1, batch_size=3)
    assert torch.allclose(a, b, atol=1e-6)
    with pytest.raises(ConfigError, match="reads prompts"):
        generate(model, loaded, 2, labels=3, steps=2)
    with pytest.raises(ConfigError, match="needs a prompt"):
        generate(model, loaded, 2, guidance=2.0, steps=2)
    with pytest.raises(ConfigError, match="not trained on text"):
        generate(model, DiffusionSpec(dataset="digits", shape=(1, 16, 16)), 2, prompts="7", steps=2)
    with pytest.raises(ConfigError, match="either class labels or prompts"):
        DiffusionSpec(dataset="digits", shape=(1, 16, 16), text=text, num_classes=10)


TINY = ["--steps", "2", "--batch-size", "8", "--ckpt-every", "2", "--base-channels", "8", "--channel-mults", "1,2"]


def test_cli_text_train_sample_and_clear_errors(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--text", "--caption-langs", "en", "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "captions for" in printed and "done: 2 steps" in printed
    png = tmp_path / "p.png"
    assert main(["sample", "--ckpt", str(out), "--prompt", "thick 7", "--prompt", "太い 3", "--n", "4", "--steps", "2", "--out", str(png)]) == 0
    assert "guidance 3.0" in capsys.readouterr().out and png.is_file()
    for argv, needle in [
        (["sample", "--ckpt", str(out), "--prompt", "fat 7", "--steps", "2", "--out", str(png)], "never saw: fat"),
        (["sample", "--ckpt", str(out), "--class", "3", "--prompt", "7", "--steps", "2", "--out", str(png)], "instead of --class"),
        (["sample", "--ckpt", str(out), "--steps", "2", "--out", str(png)], "pass --prompt"),
        (["train", "--dataset", "digits", "--text", "--conditional", "--out", str(tmp_path / "x")], "drop --conditional"),
        (["train", "--dataset", "toy2d", "--text", "--out", str(tmp_path / "y")], "grey images"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert "Traceback" not in "\n".join(err) and needle in err[-1], (argv, err)
    plain = tmp_path / "plain"
    assert main(["train", "--dataset", "digits", "--out", str(plain), *TINY]) == 0
    assert main(["sample", "--ckpt", str(plain), "--prompt", "7", "--steps", "2", "--out", str(png)]) == 2
    assert "not trained on text" in capsys.readouterr().err
