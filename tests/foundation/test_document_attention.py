"""`attn_implementation=sdpa_documents`: one causal sdpa call per packed document gives the same
logits and gradients as transformers' sdpa with its block-diagonal mask, and is plain sdpa
for padded batches and for generation with a KV cache."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from chimed_lit.models.document_attention import (
    MAX_SQUARE_SHARE,
    NAME,
    document_spans,
    register,
    spans_kwargs,
    square_share,
)
from chimed_lit.modules.causal_lm import CausalLMModule

POS = torch.tensor([[0, 1, 2, 3, 0, 1, 2, 0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5]])


def _pair(kv_heads: int = 2) -> tuple[LlamaForCausalLM, LlamaForCausalLM]:
    """The same weights under `sdpa` and under `sdpa_documents`."""
    register()
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=kv_heads,
    )
    cfg._attn_implementation = "sdpa"
    ref = LlamaForCausalLM(cfg)
    ours = LlamaForCausalLM(copy.deepcopy(cfg))
    ours.load_state_dict(ref.state_dict())
    ours.config._attn_implementation = NAME
    assert ref.config._attn_implementation == "sdpa"
    return ref, ours


def test_document_spans_by_hand():
    assert document_spans(POS) == (((0, 4), (4, 7), (7, 12)), ((0, 6), (6, 12)))
    assert document_spans(torch.arange(5)[None]) == (((0, 5),),)
    # (16 + 9 + 25) + (36 + 36) of 2 * 144
    assert square_share(document_spans(POS), 12) == pytest.approx(122 / 288)


def test_spans_only_where_documents_cover_little_of_the_square():
    _, ours = _pair()
    assert spans_kwargs(ours, torch.arange(12)[None]) == {}  # one document
    short = torch.arange(3).repeat(4)[None]  # four documents of 3: 36 / 144 of the square
    assert square_share(document_spans(short), 12) < MAX_SQUARE_SHARE
    assert spans_kwargs(ours, short) == {"document_spans": (((0, 3), (3, 6), (6, 9), (9, 12)),)}
    halves = torch.arange(6).repeat(2)[None]  # two documents of 6: half the square
    assert spans_kwargs(ours, halves) == {"document_spans": (((0, 6), (6, 12)),)}
    nearly_one = torch.cat([torch.arange(11), torch.arange(1)])[None]  # (121 + 1) / 144
    assert spans_kwargs(ours, nearly_one) == {}


@pytest.mark.parametrize("kv_heads", [4, 2])
def test_packed_logits_and_gradients_match_the_masked_sdpa(kv_heads):
    ref, ours = _pair(kv_heads)
    ids = torch.randint(0, 64, POS.shape, generator=torch.Generator().manual_seed(1))
    kw = {"document_spans": document_spans(POS)}
    a = ref(input_ids=ids, position_ids=POS, use_cache=False).logits
    b = ours(input_ids=ids, position_ids=POS, use_cache=False, **kw).logits
    torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    a.square().sum().backward()
    b.square().sum().backward()
    for (name, p), q in zip(ref.named_parameters(), ours.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-5, rtol=1e-4, msg=name)
    # the spans are what keeps documents apart: one span per row is another (leaking) model
    leak = ours(
        input_ids=ids, position_ids=POS, use_cache=False, document_spans=(((0, 12),), ((0, 12),))
    ).logits
    assert (leak - a).abs().max() > 1e-3


def test_padded_batches_and_cached_generation_are_plain_sdpa():
    ref, ours = _pair()
    ids = torch.randint(1, 64, (2, 7), generator=torch.Generator().manual_seed(2))
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]])
    assert spans_kwargs(ours, POS, mask) == {}
    assert spans_kwargs(ref, POS) == {}  # only for sdpa_documents models
    torch.testing.assert_close(
        ours(input_ids=ids, attention_mask=mask).logits,
        ref(input_ids=ids, attention_mask=mask).logits,
    )
    kw = dict(attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert torch.equal(ours.generate(ids, **kw), ref.generate(ids, **kw))


def test_causal_lm_module_passes_the_spans(tmp_path):
    """The training forward of pre-training/SFT runs packed documents apart, one sdpa call per
    document and layer, with the masked sdpa model's logits; the exported config is plain
    transformers (sdpa)."""
    ref, ours = _pair()
    pos = torch.tensor([[0, 1, 2] * 4, [0, 1, 0, 1, 2, 3, 0, 1, 2, 0, 1, 2]])  # 74/288 covered
    ids = torch.randint(0, 64, pos.shape, generator=torch.Generator().manual_seed(3))
    batch = {"input_ids": ids, "position_ids": pos, "labels": ids}
    mod = CausalLMModule(ours, optimizer=torch.optim.AdamW)
    expected = ref(input_ids=ids, position_ids=pos, use_cache=False).logits
    with torch.profiler.profile() as prof:  # the kernels that ran, counted by torch itself
        logits = mod(batch)
    calls = sum(
        e.count for e in prof.key_averages() if e.key == "aten::scaled_dot_product_attention"
    )
    assert calls == 2 * 8  # layers x documents
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    ours.save_pretrained(tmp_path)
    assert NAME not in json.dumps(json.loads((tmp_path / "config.json").read_text()))
    assert AutoModelForCausalLM.from_pretrained(tmp_path).config._attn_implementation == "sdpa"
