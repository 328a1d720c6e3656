"""`reward_model`: the trained pairwise reward model's score of (prompt, response), normalised.

The sequence the model reads is the one it was trained on: the prompt conversation plus the
response as an assistant turn, rendered by the one renderer (`chat.render.render_tokens`, as
`data.preference` renders each side of a pair) and cut after the response's end-of-turn token.
The prompt is the record's `messages` when it carries them, else its `question` as one user
turn. Scores come from `modules.reward.score_sequences` (the reward model's own scoring, read at
each row's last attended token) and are normalised as PPO normalises them:
`(raw - reward_mean) / reward_std`, the mean and std its validation wrote into the model config
(0 and 1 when absent), unless given here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from chimed_lit.chat.render import render_tokens, resolve_template
from chimed_lit.inference.batching import batched, pad_id, pad_rows
from chimed_lit.io.errors import ConfigError
from chimed_lit.modules.reward import score_sequences
from chimed_lit.rewards.base import Record, question_of


def conversation(record: Record, response: str) -> list[dict[str, str]]:
    """The prompt turns of `record` followed by `response` as the assistant's reply."""
    messages = record.get("messages")
    if messages:
        turns = [{"role": m["role"], "content": m["content"]} for m in messages]
        if turns[-1]["role"] == "assistant":  # a reference answer, not part of the prompt
            turns = turns[:-1]
    else:
        turns = [{"role": "user", "content": question_of(record)}]
    return [*turns, {"role": "assistant", "content": response}]


def sequence_ids(
    tokenizer: Any, record: Record, response: str, template: str = "chimed"
) -> list[int]:
    """Token ids the reward model scores: the rendered conversation up to the end of the
    response's turn (its end-of-turn token included), as the preference data renders it."""
    rendered = render_tokens(tokenizer, conversation(record, response), template)
    return rendered.input_ids[: rendered.turn_ends[-1]]


class RewardModelReward:
    """Called on lists of records and responses: normalised scores, `batch_size` per forward."""

    def __init__(
        self,
        reward_model: torch.nn.Module,
        tokenizer: Any,
        template: str = "chimed",
        batch_size: int = 16,
        max_length: int | None = None,
        reward_mean: float | None = None,
        reward_std: float | None = None,
    ):
        self.model, self.tokenizer, self.template = reward_model, tokenizer, template
        self.batch_size, self.max_length = batch_size, max_length
        cfg = getattr(reward_model, "config", None)
        mean = reward_mean if reward_mean is not None else getattr(cfg, "reward_mean", None)
        std = reward_std if reward_std is not None else getattr(cfg, "reward_std", None)
        self.mean = float(mean) if mean is not None else 0.0
        self.std = float(std) if std is not None else 1.0

    @torch.no_grad()
    def __call__(self, records: Sequence[Record], responses: Sequence[str]) -> list[float]:
        rows = [
            sequence_ids(self.tokenizer, r, s, self.template)
            for r, s in zip(records, responses, strict=True)
        ]
        if self.max_length:  # keep the response's end: the prompt is cut from the left
            rows = [row[-self.max_length :] for row in rows]
        device = next(self.model.parameters()).device
        pad = pad_id(self.tokenizer)
        raw: list[float] = []
        for chunk in batched(rows, self.batch_size):
            ids, mask = pad_rows(chunk, pad, left=False, device=device)
            raw += score_sequences(self.model, ids, mask).tolist()
        return [(x - self.mean) / max(self.std, 1e-6) for x in raw]


def make(
    *,
    reward_model: torch.nn.Module | None = None,
    tokenizer: Any = None,
    template: str = "chimed",
    batch_size: int = 16,
    max_length: int | None = None,
    reward_mean: float | None = None,
    reward_std: float | None = None,
) -> RewardModelReward:
    """The `reward_model` reward over a loaded reward model and its tokenizer."""
    if reward_model is None or tokenizer is None:
        raise ConfigError(
            "the reward_model reward needs a trained reward model and its tokenizer "
            "(stage.reward_model=DIR, or the reward stage of this run)"
        )
    if batch_size < 1:
        raise ConfigError(f"reward_model.batch_size={batch_size} must be >= 1")
    resolve_template(tokenizer, template, "template")
    return RewardModelReward(
        reward_model, tokenizer, template, batch_size, max_length, reward_mean, reward_std
    )
