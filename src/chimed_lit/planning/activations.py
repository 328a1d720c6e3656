"""Activation and KV-cache memory per GPU.

Activations follow Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
Transformer Models" (arXiv:2205.05198): one transformer layer stores s*b*h*(34 + 5*a*s/h) bytes
with 16-bit activations and no tensor or sequence parallelism (Sec. 4.1, eq. 1), where s is the
sequence length, b the micro-batch, h the hidden size and a the number of heads. The 5as/h term
is the attention scores, softmax and dropout; fused attention (SDPA/FlashAttention) never stores
them, which is the paper's selective recomputation: 34sbh (Sec. 4.2). With full activation
checkpointing each layer keeps only its 2sbh input, and one layer's activations are rebuilt at a
time during backward (Sec. 4.3 / 5). The output side adds 2sbh (final norm), 2sbh (output
projection input) and 4sbv fp32 logits for the cross entropy (Sec. 4.3), v the vocabulary.
With the chunked loss (`stage.module.loss_chunk=c`, losses/chunked.py) the logits never exist
whole: one chunk's 4cv, plus what the forward stores for the backward, the fp32 gradient of the
head's weight (4vh) and the hidden states' gradient (4sbh).
"""

from __future__ import annotations

from dataclasses import dataclass

from chimed_lit.planning.model_size import ModelShape


def layer_bytes(s: int, b: int, h: int, a: int, fused_attention: bool) -> float:
    """Bytes one transformer layer keeps for backward (Korthikanti et al. eq. 1)."""
    return s * b * h * (34 + (0 if fused_attention else 5 * a * s / h))


@dataclass(frozen=True)
class Activations:
    layers: float  # what the transformer layers keep for backward
    output: float  # final norm, output projection input and fp32 logits

    @property
    def total(self) -> float:
        return self.layers + self.output


def activations(
    shape: ModelShape,
    seq: int,
    micro_batch: int,
    checkpointing: bool,
    fused_attention: bool,
    lm_head: bool = True,
    loss_chunk: int = 0,
) -> Activations:
    """Peak activation bytes of one forward/backward of `micro_batch` rows of `seq` tokens
    (`loss_chunk`: the chunked LM head + loss, 0 for the full logits)."""
    s, b, h = seq, micro_batch, shape.hidden
    one = layer_bytes(s, b, h, shape.heads, fused_attention)
    layers = shape.layers * 2 * s * b * h + one if checkpointing else shape.layers * one
    if lm_head and loss_chunk:
        v = shape.vocab
        return Activations(
            layers, 4 * s * b * h + 4 * min(loss_chunk, s * b) * v + 4 * v * h + 4 * s * b * h
        )
    vocab = shape.vocab if lm_head else 1
    return Activations(layers, 4 * s * b * h + 4 * s * b * vocab)


def kv_cache_bytes(shape: ModelShape, batch: int, tokens: int, dtype_bytes: int = 2) -> float:
    """Keys and values of every layer for `batch` sequences of `tokens` (prompt + generated)."""
    return 2 * shape.layers * shape.kv_heads * shape.head_dim * tokens * batch * dtype_bytes
