"""A PPO rollout laid out as generation saw it, and the forwards that read only its responses.

Rows are `[left pad | prompt | response | right pad]`: every prompt ends at the same column W,
so response token k of every row sits at column W + k, and each per-token quantity of PPO
(log-probs, values, KL, advantages) lives on one `[batch, R]` grid, R the longest response.
Position ids count real tokens (as `generate` computes them for left-padded prompts), so each
token is seen at the position it was sampled at. The forwards keep the LM head and the value
head to the R + 1 positions that predict response tokens: the prompt's logits are never
built, which at a vocabulary of 4-150k is most of a forward's cost on short responses.

`RolloutRows.pack()` gives the same rollout padding-free: the real tokens of every row side by
side in one row, position ids restarting per sequence, no mask (per-document attention under
`sdpa_documents`, transformers' block-diagonal mask otherwise), and `keep`, the flat column of
each grid cell, so the forwards return the same `[batch, R]` grid. The prompts' left padding
(about a quarter of a rollout's tokens with prompts of mixed length) is then never computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
import torch.nn.functional as F

from chimed_lit.losses.causal_lm import IGNORE, per_token_logps
from chimed_lit.models.document_attention import Spans, document_spans, spans_kwargs


@dataclass
class RolloutRows:
    ids: torch.Tensor  # [B, W + R] token ids
    mask: torch.Tensor  # [B, W + R] 1 on prompt and response tokens
    positions: torch.Tensor  # [B, W + R] position ids (real tokens counted from 0)
    labels: torch.Tensor  # [B, R] response tokens (EOS included when produced), IGNORE after
    keep: torch.Tensor | None = None  # packed only: [B, R + 1] flat column of each grid cell

    @property
    def response_mask(self) -> torch.Tensor:
        return (self.labels != IGNORE).float()

    @property
    def packed(self) -> bool:
        return self.keep is not None

    @property
    def last(self) -> torch.Tensor:
        """[B] flat column of each sequence's last token (packed rows)."""
        return self.keep[:, -1]

    def rows(self, index: slice) -> RolloutRows:
        if self.packed:
            raise ValueError("select rows of the padded layout, then pack()")
        return RolloutRows(
            self.ids[index], self.mask[index], self.positions[index], self.labels[index]
        )

    def pack(self) -> RolloutRows:
        """The same rollout padding-free: `[1, real tokens]` ids and position ids, no mask.
        Grid cell (i, k) reads flat column `keep[i, k]`: the token at padded column W - 1 + k
        of row i, or for cells past a row's end its last token (a masked cell either way)."""
        real = self.mask.bool()
        flat = (self.mask.flatten().cumsum(0) - 1).view_as(self.mask)
        first = self.ids.shape[1] - self.labels.shape[1] - 1  # W - 1: each prompt's last token
        return RolloutRows(
            self.ids[real][None], None, self.positions[real][None], self.labels, flat[:, first:]
        )

    @cached_property
    def spans(self) -> Spans:
        """The packed row's sequences as column spans, found once for every forward over it."""
        return document_spans(self.positions)

    def forward_kwargs(self, model: torch.nn.Module) -> dict:
        """Inputs of a model (or backbone) call over these rows, without a cache."""
        if not self.packed:
            return {
                "input_ids": self.ids,
                "attention_mask": self.mask,
                "position_ids": self.positions,
                "use_cache": False,
            }
        return {
            "input_ids": self.ids,
            "position_ids": self.positions,
            "use_cache": False,
            **spans_kwargs(model, self.positions, spans=self.spans),
        }


def layout(
    prompts: list[list[int]],
    replies: list[dict[str, Any]],
    eos: int,
    pad: int,
    device: torch.device | str = "cpu",
) -> RolloutRows:
    """Rows for `prompts` and `generate`'s `replies` (their `ids`, and `finished` for the EOS)."""
    responses = [r["ids"] + ([eos] if r["finished"] else []) for r in replies]
    width = max(len(p) for p in prompts)
    longest = max(1, max(len(x) for x in responses))
    ids = torch.full((len(prompts), width + longest), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full((len(prompts), longest), IGNORE, dtype=torch.long)
    for i, (p, resp) in enumerate(zip(prompts, responses, strict=True)):
        ids[i, width - len(p) : width] = torch.tensor(p)
        ids[i, width : width + len(resp)] = torch.tensor(resp, dtype=torch.long)
        mask[i, width - len(p) : width + len(resp)] = 1
        labels[i, : len(resp)] = torch.tensor(resp, dtype=torch.long)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return RolloutRows(ids.to(device), mask.to(device), positions.to(device), labels.to(device))


def behaviour_logps(replies: list[dict[str, Any]], rows: RolloutRows) -> torch.Tensor:
    """[B, R] the sampling policy's log-probs on the response grid, taken from the logits
    generation already computed (`generate(..., with_logps=True)`): no second forward."""
    out = torch.zeros(rows.labels.shape, device=rows.labels.device)
    for i, r in enumerate(replies):
        out[i, : len(r["logps"])] = r["logps"].to(out.device)
    return out


def response_logits(model: torch.nn.Module, rows: RolloutRows) -> torch.Tensor:
    """[B, R + 1, vocab] logits of the last R + 1 positions (the LM head on those only): column
    k predicts response token k; the last column, past the longest response, is unused."""
    keep = rows.labels.shape[1] + 1
    if rows.packed:
        logits = model(**rows.forward_kwargs(model), logits_to_keep=rows.keep.flatten()).logits
        return logits.view(*rows.keep.shape, -1)
    logits = model(**rows.forward_kwargs(model), logits_to_keep=keep).logits
    return logits[:, -keep:]


def response_logps(logits: torch.Tensor, rows: RolloutRows) -> torch.Tensor:
    """[B, R] log-probs of the response tokens under `response_logits`, 0 where masked
    (`per_token_logps`'s shift, with labels one column to the right)."""
    return per_token_logps(logits, F.pad(rows.labels, (1, 0), value=IGNORE))


def response_values(critic: torch.nn.Module, rows: RolloutRows) -> torch.Tensor:
    """[B, R] the critic's value of the state before each response token (its scalar head on
    the hidden state that predicts that token)."""
    backbone = getattr(critic, critic.base_model_prefix)
    hidden = backbone(**rows.forward_kwargs(critic)).last_hidden_state
    if rows.packed:
        hidden = hidden[0, rows.keep[:, :-1]]
    else:
        hidden = hidden[:, -rows.labels.shape[1] - 1 : -1]
    return critic.score(hidden).squeeze(-1).float()
