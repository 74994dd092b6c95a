"""genlab.nn.text_encoder: tokenizer round trip, unknown words, padding; the encoder ignores padding."""

import pytest
import torch

from genlab.errors import ConfigError
from genlab.nn.text_encoder import PromptTokenizer, TextEncoder, TextEncoderConfig

PROMPTS = ["太い 右に傾いた 7", "細い 3", "thick upright 1", "小さい 0", ""]


def test_tokenizer_round_trip_unknown_words_and_padding():
    tok = PromptTokenizer.build(PROMPTS, max_length=5)
    words = {w for p in PROMPTS for w in p.split()}
    assert tok.vocab_size == len(words) + 3
    ids, pad = tok(["太い 右に傾いた 7", "細い ", ""])
    assert ids.shape == pad.shape == (3, 5)
    assert ids[:, 0].eq(tok.tokenizer.token_to_id("[CLS]")).all()  # every prompt starts with [CLS], the empty one too
    assert pad.tolist() == [[False] * 4 + [True], [False, False] + [True] * 3, [False] + [True] * 4]
    assert tok.decode(ids) == ["太い 右に傾いた 7", "細い", ""]
    unk, _ = tok(["太い 9"])  # "9" was not in the prompts
    assert unk[0, 2] == tok.tokenizer.token_to_id("[UNK]")
    cut, _ = tok(["太い 右に傾いた 7 細い 3 0"])
    assert cut.shape == (1, 5) and tok.decode(cut) == ["太い 右に傾いた 7 細い"]
    again = PromptTokenizer.from_json(tok.to_json())
    assert torch.equal(again(PROMPTS)[0], tok(PROMPTS)[0])


def test_encoder_ignores_padded_positions():
    torch.manual_seed(0)
    tok = PromptTokenizer.build(PROMPTS, max_length=8)
    enc = TextEncoder(TextEncoderConfig(vocab_size=tok.vocab_size, max_length=8, width=16, heads=2)).eval()
    ids, pad = tok(["太い 右に傾いた 7"])
    h = enc(ids, pad)
    assert h.shape == (1, 8, 16)
    # what sits in the padded slots must not change the real tokens' states
    other = ids.clone()
    other[pad] = 5
    torch.testing.assert_close(enc(other, pad)[~pad], h[~pad])
    # a shorter padding (the same prompt in a 4-token window) gives the same states
    torch.testing.assert_close(enc(ids[:, :4], pad[:, :4]), h[:, :4], rtol=1e-5, atol=1e-6)
    # without the mask the padding does leak in
    assert not torch.allclose(enc(other, None)[~pad], enc(ids, None)[~pad])
    with pytest.raises(ConfigError, match="exceed"):
        enc(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ConfigError, match="divisible"):
        TextEncoderConfig(width=10, heads=4)
