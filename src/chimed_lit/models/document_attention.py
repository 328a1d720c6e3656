"""Attention per document for packed rows: `model.attn_implementation=sdpa_documents`.

A packed row (documents laid side by side, position ids restarting at 0 for each) must not let
a document see the one before it. transformers' `sdpa` path builds a block-diagonal mask for
that and runs the kernel over the whole `row x row` square, masked: at sequence 2,048 with
documents of a few hundred tokens most of that work is thrown away, and a masked kernel cannot
skip the causal upper half either. Without a variable-length kernel (FlashAttention-2 does this
on GPUs; FlexAttention has no backward on CPU in torch 2.13) the cheapest exact alternative is
one causal sdpa call per document, which only computes the pairs the model may attend to.

The modules pass the documents' spans as the `document_spans` keyword (from
`document_spans(position_ids)`); transformers hands unknown keywords through to the attention
function. Without it, or with a padding mask, or while decoding with a cache, this is plain
`sdpa`, so the same model serves generation, padded batches and packed ones. A model whose
code does not pass keywords down to its attention simply runs `sdpa` with the mask (exact,
not faster).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NAME = "sdpa_documents"

Spans = tuple[tuple[tuple[int, int], ...], ...]  # per row: (start, end) of each document


def document_spans(position_ids: torch.Tensor) -> Spans:
    """Each row's documents as (start, end) column spans: a document starts wherever the
    position id is 0 (a row's first column always starts one)."""
    starts = position_ids == 0
    starts[:, 0] = True
    length = position_ids.shape[-1]
    out = []
    for row in starts:
        cols = row.nonzero().flatten().tolist()
        out.append(tuple(zip(cols, cols[1:] + [length], strict=True)))
    return tuple(out)


def sdpa_documents_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    document_spans: Spans | None = None,
    **kwargs,
):
    """transformers' attention-function contract: query [B, H, T, D], key/value [B, KV, S, D];
    returns ([B, T, H, D], None)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if document_spans is None or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    groups = getattr(module, "num_key_value_groups", 1)
    p = dropout if module.training else 0.0
    rows = []
    # split, not slices: a split's backward is one cat of the pieces' gradients, where each
    # slice's backward would zero-fill and add a gradient the size of the whole row
    for spans, q_row, k_row, v_row in zip(
        document_spans, query.split(1), key.split(1), value.split(1), strict=True
    ):
        lengths = [e - s for s, e in spans]
        parts = [
            F.scaled_dot_product_attention(
                q, k, v, dropout_p=p, is_causal=True, scale=scaling, enable_gqa=groups > 1
            )
            for q, k, v in zip(
                q_row.split(lengths, 2),
                k_row.split(lengths, 2),
                v_row.split(lengths, 2),
                strict=True,
            )
        ]
        rows.append(parts[0] if len(parts) == 1 else torch.cat(parts, dim=2))
    out = rows[0] if len(rows) == 1 else torch.cat(rows, dim=0)
    return out.transpose(1, 2).contiguous(), None


def register() -> None:
    """Make `attn_implementation="sdpa_documents"` known to transformers (masks as sdpa's)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, sdpa_documents_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)


# Per-document calls pay off unless one document fills (nearly) the whole row: measured on this
# project's CPU (two threads, 2026-12-01, 7M LLaMA at 512 tokens, batch 8, a training step) with
# the split q/k/v: share 0.25: 0.79 s per document against 0.90 s masked; 0.5: 0.83 vs 0.90;
# 0.66: 0.89 vs 0.92; a row that is one document (1.0): 0.91 vs 0.88 (one batched causal call).
# 30M at 512 on the benchmark's documents (0.40): 2.93 vs 3.12 s. Below this share, go per
# document.
MAX_SQUARE_SHARE = 0.75


def square_share(spans: Spans, length: int) -> float:
    """The share of the rows' `length x length` squares that lies inside documents."""
    inside = sum((e - s) ** 2 for row in spans for s, e in row)
    return inside / max(1, len(spans) * length * length)


def spans_kwargs(
    model: torch.nn.Module,
    position_ids: torch.Tensor | None,
    attention_mask: torch.Tensor | None = None,
    spans: Spans | None = None,
) -> dict:
    """`{"document_spans": ...}` for a packed batch (position ids, no padding mask) whose
    documents cover less than `MAX_SQUARE_SHARE` of each row's square, when the model runs
    `sdpa_documents`; empty otherwise (the masked sdpa call is then the faster one). `spans`:
    `document_spans(position_ids)` when the caller already has them."""
    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", None) != NAME:
        return {}
    if attention_mask is not None or position_ids is None:
        return {}
    spans = spans if spans is not None else document_spans(position_ids)
    if square_share(spans, position_ids.shape[-1]) >= MAX_SQUARE_SHARE:
        return {}
    return {"document_spans": spans}
