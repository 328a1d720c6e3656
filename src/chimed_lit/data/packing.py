"""Packing documents into fixed-length blocks without attention across documents.

Each block holds whole documents (best-fit decreasing, so nothing is cut unless a document is
longer than a block) with position ids restarting at every document. transformers' LLaMA-family
masks read those resets and build a block-diagonal causal mask for sdpa, eager and flex
attention when no `attention_mask` is passed (and flash-attention-2 uses them as varlen
boundaries), so a packed document sees exactly what it would see alone. Models whose attention
ignores position-id resets (older or custom architectures) would attend across documents:
use `data.pack=false` for those.
"""

from __future__ import annotations

import bisect

import torch

IGNORE = -100


def best_fit_blocks(lengths: list[int], capacity: int) -> list[list[int]]:
    """Indices of documents per block, longest first into the fullest block that still fits."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    free: list[tuple[int, int]] = []  # sorted (space left, block id)
    blocks: list[list[int]] = []
    for i in order:
        n = lengths[i]
        if n > capacity:
            raise ValueError(f"document {i} has {n} tokens, more than the block size {capacity}")
        j = bisect.bisect_left(free, (n, -1))
        if j < len(free):
            space, b = free.pop(j)
        else:
            space, b = capacity, len(blocks)
            blocks.append([])
        blocks[b].append(i)
        if space - n > 0:
            bisect.insort(free, (space - n, b))
    return [sorted(b) for b in blocks]


def split_long(ids: list[int], max_length: int) -> list[list[int]]:
    """A document longer than a block becomes several documents of at most `max_length`."""
    return [ids[i : i + max_length] for i in range(0, len(ids), max_length)] or [[]]


def layout_block(docs: list[list[int]], capacity: int, pad_id: int) -> dict[str, list[int]]:
    """One block: tokens, labels (the first token of each document is never a target) and
    per-document position ids; the tail is padding with ignored labels and its own positions."""
    input_ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    for doc in docs:
        input_ids += doc
        labels += [IGNORE] + doc[1:]
        positions += list(range(len(doc)))
    pad = capacity - len(input_ids)
    input_ids += [pad_id] * pad
    labels += [IGNORE] * pad
    positions += list(range(pad))
    return {"input_ids": input_ids, "labels": labels, "position_ids": positions}


def pack(
    documents: list[list[int]], capacity: int, pad_id: int, packed: bool = True
) -> dict[str, list[list[int]]]:
    """Blocks of `capacity` tokens from `documents` (one per block when `packed` is False)."""
    groups = (
        best_fit_blocks([len(d) for d in documents], capacity)
        if packed
        else [[i] for i in range(len(documents))]
    )
    rows = [layout_block([documents[i] for i in g], capacity, pad_id) for g in groups]
    return {k: [r[k] for r in rows] for k in ("input_ids", "labels", "position_ids")}


def pack_labelled(
    input_ids: list[list[int]], labels: list[list[int]], capacity: int, pad_id: int
) -> dict[str, list[list[int]]]:
    """Like `pack`, for examples that bring their own labels (SFT's loss masks): best-fit blocks
    of whole examples, per-example position ids, and each example's first label ignored (it
    would be predicted from the previous example's last token)."""
    groups = best_fit_blocks([len(x) for x in input_ids], capacity)
    rows: dict[str, list[list[int]]] = {"input_ids": [], "labels": [], "position_ids": []}
    for g in groups:
        ids: list[int] = []
        lab: list[int] = []
        pos: list[int] = []
        for i in g:
            ids += input_ids[i]
            lab += [IGNORE] + list(labels[i][1:])
            pos += list(range(len(input_ids[i])))
        pad = capacity - len(ids)
        rows["input_ids"].append(ids + [pad_id] * pad)
        rows["labels"].append(lab + [IGNORE] * pad)
        rows["position_ids"].append(pos + list(range(pad)))
    return rows


def pack_sequences(
    sequences: list[list[int]], capacity: int, pad_id: int
) -> dict[str, torch.Tensor]:
    """Padding-free rows for scoring whole sequences (reward pairs): best-fit rows of at most
    `capacity` tokens, as wide as the fullest row, position ids restarting per sequence, and
    `ends[k]`, the flat index (row * width + column) of sequence k's last token, so per-sequence
    outputs are `hidden.flatten(0, 1)[ends]` in the caller's order."""
    groups = best_fit_blocks([len(s) for s in sequences], capacity)
    width = max(sum(len(sequences[i]) for i in g) for g in groups)
    ids = torch.full((len(groups), width), pad_id, dtype=torch.long)
    positions = torch.zeros_like(ids)
    ends = torch.empty(len(sequences), dtype=torch.long)
    for r, g in enumerate(groups):
        col = 0
        for i in g:
            n = len(sequences[i])
            ids[r, col : col + n] = torch.as_tensor(sequences[i])
            positions[r, col : col + n] = torch.arange(n)
            ends[i] = r * width + col + n - 1
            col += n
        positions[r, col:] = torch.arange(width - col)
    return {"input_ids": ids, "position_ids": positions, "ends": ends}
