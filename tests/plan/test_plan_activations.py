"""Activation and KV-cache memory against hand computations of the cited formulas."""

from __future__ import annotations

from chimed_lit.planning.activations import activations, kv_cache_bytes, layer_bytes
from chimed_lit.planning.model_size import ModelShape

# a LLaMA-2-13B-like shape: 40 layers, hidden 5120, 40 heads, vocab 39424
SHAPE = ModelShape(params=13_000_000_000, largest_layer_params=0, layers=40, hidden=5120,
                   heads=40, kv_heads=40, head_dim=128, vocab=39424)


def test_layer_formula_by_hand():
    """Korthikanti et al. 2022 eq. 1: sbh(34 + 5as/h); s=1024, b=2, h=5120, a=40 gives
    5as/h = 40, so 1024*2*5120*74 = 775,946,240 bytes; fused attention keeps 34sbh."""
    assert layer_bytes(1024, 2, 5120, 40, fused_attention=False) == 775_946_240
    assert layer_bytes(1024, 2, 5120, 40, fused_attention=True) == 1024 * 2 * 5120 * 34


def test_whole_model_with_and_without_checkpointing_by_hand():
    s, b, h, v = 1024, 2, 5120, 39424
    output = 4 * s * b * h + 4 * s * b * v  # final norm + head input (2sbh each), fp32 logits
    off = activations(SHAPE, s, b, checkpointing=False, fused_attention=False)
    assert off.total == 40 * 775_946_240 + output == 31_402_754_048
    on = activations(SHAPE, s, b, checkpointing=True, fused_attention=False)
    # each layer keeps its 2sbh input; one layer's activations are rebuilt at a time
    assert on.total == 40 * 2 * s * b * h + 775_946_240 + output
    assert on.total < off.total / 10


def test_activations_grow_linearly_with_batch_and_without_scores_with_length():
    a1 = activations(SHAPE, 512, 1, False, True).total
    assert activations(SHAPE, 512, 4, False, True).total == 4 * a1
    assert activations(SHAPE, 1024, 1, False, True).total == 2 * a1  # fused: linear in s
    eager = activations(SHAPE, 1024, 1, False, False).layers
    assert eager > 2 * activations(SHAPE, 512, 1, False, False).layers  # the as^2 term


def test_kv_cache_by_hand():
    """2 (K and V) x layers x kv heads x head dim x tokens x batch x 2 bytes (bf16)."""
    assert kv_cache_bytes(SHAPE, batch=8, tokens=1024) == 2 * 40 * 40 * 128 * 1024 * 8 * 2
    gqa = ModelShape(1, 0, layers=28, hidden=3584, heads=28, kv_heads=4, head_dim=128, vocab=1)
    assert kv_cache_bytes(gqa, batch=1, tokens=1) == 2 * 28 * 4 * 128 * 2
