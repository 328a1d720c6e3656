"""Token-id rows into padded batches, shared by generation (left padding, so every prompt ends
where the new tokens start) and evaluation's scoring (right padding, so each row's positions
are its own)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import torch

T = TypeVar("T")


def batched(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `size` items (at least one per slice)."""
    for i in range(0, len(items), max(1, size)):
        yield items[i : i + size]


def pad_id(tokenizer: Any) -> int:
    """The padding id: the tokenizer's pad token, else its EOS, else its unknown token, else 0
    (padding is masked out, so any id serves; a tokenizer without one must still batch)."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


def pad_rows(
    rows: Sequence[Sequence[int]], pad: int, left: bool, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) [B, longest row], padded on the left or the right."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        cols = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, cols] = torch.tensor(list(row), dtype=torch.long)
        mask[i, cols] = 1
    return ids.to(device), mask.to(device)
