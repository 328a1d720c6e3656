"""The lean sampling loop (`decoding.py`) against HF's own warpers and `generate`: same
truncation (temperature -> top-k -> top-p), same greedy tokens and EOS handling on left-padded
prompts, draws that follow the distribution, streaming, and HF `generate` where the loop does
not apply."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers.generation.logits_process import (
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from chimed_lit.inference import decoding
from chimed_lit.inference.generation import Sampling, generate
from chimed_lit.io.errors import ConfigError
from chimed_lit.models.factory import ModelFactory


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    factory = ModelFactory(
        cache_dir=str(tmp_path_factory.mktemp("dec")),
        arch={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
        },
    )
    tok = factory.load_tokenizer()
    torch.manual_seed(0)
    model = factory.load_causal_lm(tok).eval()
    prompts = [
        tok("头痛怎么办")["input_ids"],
        tok("发烧三天，咳嗽，需要去医院吗")["input_ids"],
        tok("血压")["input_ids"],
    ]
    return model, tok, prompts


def test_warp_by_hand():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))

    def kept(out: torch.Tensor) -> list[bool]:
        return torch.isfinite(out)[0].tolist()

    assert kept(decoding.warp(logits, 1.0, 2, 1.0)) == [True, True, False, False]
    # top-p keeps a token while the mass ranked above it is below p: 0, 0.5, 0.8, 0.95
    assert kept(decoding.warp(logits, 1.0, 0, 0.7)) == [True, True, False, False]
    assert kept(decoding.warp(logits, 1.0, 0, 0.81)) == [True, True, True, False]
    assert kept(decoding.warp(logits, 1.0, 0, 0.1)) == [True, False, False, False]
    torch.testing.assert_close(decoding.warp(logits, 0.5, 0, 1.0), logits / 0.5)
    with pytest.raises(ConfigError, match="temperature"):
        decoding.warp(logits, 0.0, 0, 1.0)


@pytest.mark.parametrize(
    ("temperature", "top_k", "top_p"), [(0.7, 0, 1.0), (1.0, 5, 1.0), (1.3, 0, 0.9), (0.8, 20, 0.6)]
)
def test_warp_matches_hf_warpers(temperature, top_k, top_p):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 64, generator=g) * 3
    want = logits.clone()
    warpers = [TemperatureLogitsWarper(temperature)]
    if top_k:
        warpers.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))
    for w in warpers:
        want = w(None, want)
    got = decoding.warp(logits, temperature, top_k, top_p)
    assert torch.equal(torch.isfinite(got), torch.isfinite(want))
    torch.testing.assert_close(got[torch.isfinite(got)], want[torch.isfinite(want)])


def test_draw_follows_the_distribution_and_never_a_masked_token():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05, 0.0])
    logits = torch.log(probs).expand(20_000, -1)  # -inf on the last token
    tokens = decoding.draw(logits, torch.Generator().manual_seed(0))[:, 0]
    counts = torch.bincount(tokens, minlength=5).float()
    assert counts[4] == 0
    expected = probs * len(tokens)
    sigma = (len(tokens) * probs * (1 - probs)).sqrt()
    assert ((counts - expected).abs()[:4] < 4 * sigma[:4]).all(), counts


def test_greedy_tokens_and_eos_padding_match_hf_generate(tiny):
    model, tok, prompts = tiny
    greedy = Sampling(max_new_tokens=8, do_sample=False)
    assert decoding.supports(model, 1.0)
    ours = generate(model, tok, prompts, greedy, with_logps=True)
    # an EOS id that one row emits mid-way: that row ends, the others go on
    eos = ours[1]["ids"][3]
    width = max(map(len, prompts))
    ids = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in prompts])
    mask = (torch.arange(width) >= torch.tensor([width - len(p) for p in prompts])[:, None]).long()
    hf = model.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=8,
        do_sample=False,
        pad_token_id=tok.pad_token_id,
        eos_token_id=eos,
    )[:, width:]
    new, logps = decoding.sample(
        model,
        ids,
        mask,
        max_new_tokens=8,
        do_sample=False,
        eos_token_id=eos,
        pad_token_id=tok.pad_token_id,
        with_logps=True,
    )
    assert torch.equal(new, hf)
    row = new[1].tolist()
    assert row[row.index(eos) + 1 :] == [tok.pad_token_id] * (len(row) - row.index(eos) - 1)
    assert logps.shape == new.shape and (logps <= 0).all()


def test_pad_rows_both_sides():
    from chimed_lit.inference.batching import pad_rows

    ids, mask = pad_rows([[5, 6, 7], [8]], pad=0, left=True)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    ids, mask = pad_rows([[5, 6, 7], [8]], pad=0, left=False)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_a_tokenizer_without_pad_pads_with_eos(tiny):
    """Evaluation loads tokenizers as they come, some without a pad token: padding falls back
    to EOS (masked out, so the replies are those of a tokenizer that has one)."""
    model, tok, prompts = tiny
    bare = copy.deepcopy(tok)
    bare.pad_token = None
    assert bare.pad_token_id is None
    greedy = Sampling(max_new_tokens=6, do_sample=False)
    want = [r["ids"] for r in generate(model, tok, prompts, greedy)]
    assert [r["ids"] for r in generate(model, bare, prompts, greedy)] == want


def test_sampled_logps_match_a_full_forward_with_truncation(tiny):
    """Under top-k / top-p the recorded log-probs are still those of logits / temperature
    (PPO's ratio compares that distribution), taken at the right positions of each row."""
    model, tok, prompts = tiny
    torch.manual_seed(3)
    sampling = Sampling(max_new_tokens=6, do_sample=True, temperature=0.8, top_k=50, top_p=0.9)
    for prompt, reply in zip(
        prompts, generate(model, tok, prompts, sampling, with_logps=True), strict=True
    ):
        response = reply["ids"] + ([tok.eos_token_id] if reply["finished"] else [])
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prompt + response])).logits[0] / 0.8
        want = torch.log_softmax(logits[len(prompt) - 1 : -1], -1)
        want = want.gather(-1, torch.tensor(response)[:, None])[:, 0]
        torch.testing.assert_close(reply["logps"], want, atol=1e-4, rtol=1e-4)
        # every sampled token was inside its step's top-50 (with top-p 0.9 inside that)
        top = logits[len(prompt) - 1 : -1].topk(50, -1).indices
        assert all(t in top[i].tolist() for i, t in enumerate(response))


def test_streamer_sees_the_reply(tiny):
    from transformers import TextStreamer

    model, tok, prompts = tiny

    class Collect(TextStreamer):
        def on_finalized_text(self, text: str, stream_end: bool = False):
            self.seen = getattr(self, "seen", "") + text

    streamer = Collect(tok, skip_prompt=True, skip_special_tokens=True)
    reply = generate(model, tok, prompts[:1], Sampling(max_new_tokens=6), streamer=streamer)[0]
    assert streamer.seen.strip() == reply["text"].strip() and reply["text"]


def test_repetition_penalty_goes_to_hf_generate(tiny):
    """An echo model (output head = 20 x the embeddings) repeats its last token forever; a
    repetition penalty, which the loop leaves to HF `generate`, must still break that."""
    model, tok, prompts = tiny
    echo = copy.deepcopy(model)
    with torch.no_grad():
        echo.lm_head.weight.copy_(echo.model.embed_tokens.weight * 20)
    assert decoding.supports(echo, 1.0) and not decoding.supports(echo, 5.0)
    plain = generate(echo, tok, prompts, Sampling(max_new_tokens=8))
    penalised = generate(echo, tok, prompts, Sampling(max_new_tokens=8, repetition_penalty=5.0))
    assert all(len(set(r["ids"])) == 1 for r in plain)
    assert all(len(set(r["ids"])) == len(r["ids"]) for r in penalised)


def test_models_from_elsewhere_go_to_hf_generate(tiny):
    """A model class that is not transformers-native (remote code) may not take a Cache
    object or `logits_to_keep`: it goes through HF generate, with the same greedy tokens."""
    model, tok, prompts = tiny
    remote = type("RemoteLlama", (type(model),), {"__module__": "transformers_modules.remote"})
    other = copy.deepcopy(model)
    other.__class__ = remote
    assert not decoding.supports(other, 1.0)
    greedy = Sampling(max_new_tokens=8)
    assert [r["ids"] for r in generate(other, tok, prompts, greedy)] == [
        r["ids"] for r in generate(model, tok, prompts, greedy)
    ]


def test_compiled_static_cache_decoding_matches_the_eager_loop(tiny):
    """`compile=True` (a compiled decode step over a static cache): the same greedy tokens,
    EOS padding and log-probs as the eager loop, and one graph serves later batches of the same
    size whose prompts pad to another width inside the same cache bucket (no recompile)."""
    from torch._dynamo.utils import counters

    model, tok, prompts = tiny
    eos = generate(model, tok, prompts, Sampling(max_new_tokens=8, do_sample=False))[1]["ids"][3]

    def run(batch, compile):
        width = max(map(len, batch))
        ids = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in batch])
        mask = (ids != tok.pad_token_id).long()
        return decoding.sample(
            model,
            ids,
            mask,
            max_new_tokens=8,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=tok.pad_token_id,
            with_logps=True,
            compile=compile,
        )

    torch._dynamo.reset()
    counters.clear()
    eager_new, eager_logps = run(prompts, False)
    new, logps = run(prompts, True)
    assert torch.equal(new, eager_new) and eos in new[1].tolist()
    torch.testing.assert_close(logps, eager_logps, atol=1e-5, rtol=1e-5)
    graphs = counters["stats"]["unique_graphs"]
    assert graphs >= 1
    longer = [p + p[1:] for p in prompts]  # a wider left-padded batch, same size, same bucket
    assert max(map(len, longer)) + 8 <= decoding.CACHE_BUCKET
    again, _ = run(longer, True)
    assert torch.equal(again, run(longer, False)[0])
    assert counters["stats"]["unique_graphs"] == graphs  # no new graph for the new width


def test_compile_falls_back_or_explains(tiny, monkeypatch):
    """A model class without static-cache compile support decodes eagerly (warned, same tokens);
    on CPU without a C++ compiler `compile=True` is a ConfigError naming the knob."""
    model, tok, prompts = tiny
    greedy = Sampling(max_new_tokens=5, do_sample=False)
    want = [r["ids"] for r in generate(model, tok, prompts, greedy)]
    plain = copy.deepcopy(model)
    plain._can_compile_fullgraph = False
    with pytest.warns(UserWarning, match="static"):
        got = generate(
            plain, tok, prompts, Sampling(max_new_tokens=5, do_sample=False, compile=True)
        )
    assert [r["ids"] for r in got] == want
    monkeypatch.setenv("CXX", "")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ConfigError, match="sampling.compile=true needs a C\\+\\+ compiler"):
        generate(model, tok, prompts, Sampling(max_new_tokens=5, do_sample=False, compile=True))
