"""Model FLOPs of a training step, counted by hand from the LLaMA config (no profiler).

MFU counts the FLOPs the model needs, not what the hardware did: padding, recomputation
(gradient checkpointing) and masked attention blocks are not credited. Per real token a
training step costs 6 FLOPs per matmul weight (2 forward, 4 backward: Kaplan et al. 2020,
PaLM appendix B); causal attention adds 12 * layers * attn_dim per (query, key) pair with the
key at or before the query, summed over each document (packed documents do not see each other).
The input embedding is a lookup, not a matmul, so it is not counted; the LM head is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def matmul_params(arch: Mapping[str, Any], head: str = "lm") -> int:
    """Weights that take part in a matmul for every token: attention and MLP projections of
    every layer, plus the LM head (`head="lm"`) or a one-output score head (`head="score"`)."""
    d, f = arch["hidden_size"], arch["intermediate_size"]
    heads = arch["num_attention_heads"]
    kv = arch.get("num_key_value_heads") or heads
    hd = arch.get("head_dim") or d // heads
    attn = d * heads * hd + 2 * d * kv * hd + heads * hd * d  # q, k, v, o
    mlp = 3 * d * f  # gate, up, down
    out = arch["vocab_size"] * d if head == "lm" else d
    return arch["num_hidden_layers"] * (attn + mlp) + out


def total_params(arch: Mapping[str, Any]) -> int:
    """All parameters of a LlamaForCausalLM (norm weights included), to name a config's size."""
    d, layers, vocab = arch["hidden_size"], arch["num_hidden_layers"], arch["vocab_size"]
    tied = arch.get("tie_word_embeddings", False)
    body = matmul_params(arch, head="score") - d  # the layers only
    return vocab * d + body + layers * 2 * d + d + (0 if tied else vocab * d)


def causal_pairs(lengths: Iterable[int]) -> int:
    """(query, key) pairs causal attention scores over documents of these lengths."""
    return sum(n * (n + 1) // 2 for n in lengths)


def attention_dim(arch: Mapping[str, Any]) -> int:
    heads = arch["num_attention_heads"]
    return heads * (arch.get("head_dim") or arch["hidden_size"] // heads)


def train_flops(
    arch: Mapping[str, Any], tokens: int, pairs: int, head: str = "lm", forward_only_copies: int = 0
) -> float:
    """FLOPs of training on `tokens` real tokens whose documents hold `pairs` causal pairs.
    `forward_only_copies` adds frozen models run forward on the same tokens (DPO's reference:
    1), at a third of the training cost each."""
    per_pass = (
        2 * matmul_params(arch, head) * tokens
        + 4 * arch["num_hidden_layers"] * attention_dim(arch) * pairs
    )
    return 3 * per_pass + forward_only_copies * per_pass
