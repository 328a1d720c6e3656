"""Activation and KV-cache memory against hand computations of the cited formulas."""

from __future__ import annotations

from chimed_lit.planning.activations import activations, kv_cache_bytes, layer_bytes
from chimed_lit.planning.model_size import ModelShape

# a LLaMA-2-13B-like shape: 40 layers, hidden 5120, 40 heads, vocab 39424
SHAPE = ModelShape(
    params=13_000_000_000,
    largest_layer_params=0,
    layers=40,
    hidden=5120,
    heads=40,
    kv_heads=40,
    head_dim=128,
    vocab=39424,
)
QWEN_VOCAB = 152064
SHAPE_QWEN = ModelShape(
    params=14_000_000_000,
    largest_layer_params=0,
    layers=40,
    hidden=5120,
    heads=40,
    kv_heads=40,
    head_dim=128,
    vocab=QWEN_VOCAB,
)


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


def test_chunked_loss_output_by_hand():
    """`loss_chunk=c`: one chunk's fp32 logits (4cv), the fp32 head-weight gradient (4vh) and
    the hidden states' gradient (4sbh) the forward stores, instead of 4sbv."""
    s, b, h, v, c = 4096, 4, 5120, 152064, 1024
    full = activations(SHAPE_QWEN, s, b, checkpointing=True, fused_attention=True)
    chunked = activations(SHAPE_QWEN, s, b, checkpointing=True, fused_attention=True, loss_chunk=c)
    assert full.output == 4 * s * b * h + 4 * s * b * v
    assert chunked.output == 4 * s * b * h + 4 * c * v + 4 * v * h + 4 * s * b * h
    assert chunked.layers == full.layers
    # 16k tokens: 10 GB of logits against 0.6 (a chunk) + 3.1 (weight gradient) + 0.3 GB
    assert full.output - chunked.output > 5e9
    # 4k tokens with hidden 5,120: the weight gradient outweighs the logits it replaces
    assert (
        activations(SHAPE_QWEN, 4096, 1, True, True, loss_chunk=c).output
        > activations(SHAPE_QWEN, 4096, 1, True, True).output
    )
    # a chunk larger than the micro-batch holds the micro-batch's logits at most
    assert activations(SHAPE_QWEN, 16, 1, True, True, loss_chunk=c).output == (
        4 * 16 * h + 4 * 16 * v + 4 * v * h + 4 * 16 * h
    )


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


def _saved_per_layer(checkpointing: bool, h=256, i=688, a=4, s=128, b=2) -> float:
    """Bytes autograd saves per decoder layer of a real transformers LLaMA in bf16 (SDPA),
    from the difference between a 4-layer and a 2-layer model (unique storages only)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    totals = {}
    for layers in (2, 4):
        cfg = LlamaConfig(
            hidden_size=h,
            intermediate_size=i,
            num_hidden_layers=layers,
            num_attention_heads=a,
            num_key_value_heads=a,
            vocab_size=512,
            max_position_embeddings=512,
        )
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).train()
        if checkpointing:
            model.activation_checkpointing_enable({"use_reentrant": False})
        seen: dict[int, int] = {}

        def pack(t, seen=seen):
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(input_ids=torch.randint(0, 512, (b, s)), use_cache=False)
        totals[layers] = sum(seen.values())
    return (totals[4] - totals[2]) / 2


def test_checkpointed_layer_keeps_its_2sbh_input_in_a_real_llama():
    """Full recomputation as the paper counts it: each checkpointed layer keeps 2sbh bytes."""
    assert _saved_per_layer(checkpointing=True) == 2 * 128 * 2 * 256


def test_the_formula_is_a_lower_bound_for_transformers_llama():
    """transformers' LLaMA keeps more than the paper's GPT layer (RMSNorm upcasts to fp32, the
    SwiGLU MLP keeps several sbi tensors): on this CPU about 70sbh per layer against the
    formula's 34sbh. Recorded in docs/memory_plan.md; the plan's no-checkpointing figures are
    therefore optimistic for LLaMA models."""
    measured = _saved_per_layer(checkpointing=False)
    formula = layer_bytes(128, 2, 256, 4, fused_attention=True)
    assert formula < measured < 2.5 * formula
