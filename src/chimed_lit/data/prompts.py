"""`PromptDataModule`: prompts for RLHF rollouts, from any format the SFT stage reads.

The prompt is everything before the last assistant turn (or the whole conversation when it ends
with the user), rendered with the SFT rendering function plus the generation prompt, so the
policy continues exactly where SFT taught it to answer. Prompts longer than `max_length` keep
their end (the question being asked) and are counted as truncated; a prompt whose kept end holds
no token of its question (only the template's reply header fits) is dropped and counted, and
more than `data.max_dropped_fraction` dropped is a `DataError` (the base's rule).
"""

from __future__ import annotations

from typing import Any

import torch

from chimed_lit.chat.render import TEMPLATE_CHOICES, prompt_text, render_prompt
from chimed_lit.data.base import BaseDataModule
from chimed_lit.data.conversation import prompt_messages
from chimed_lit.io.errors import ConfigError


class PromptDataModule(BaseDataModule):
    """Knobs (besides the base's): `template` (chimed|ziya|tokenizer), `max_length` (prompt
    tokens). Batches are lists of token-id prompts (the policy left-pads them to generate)."""

    demo_files = ("prompts.jsonl", "prompts_val.jsonl")
    example_noun = "prompts"
    drop_reason = "keep no token of their question within data.max_length={max_length}"

    def __init__(self, template: str = "chimed", **kwargs: Any):
        super().__init__(**kwargs)
        if template not in TEMPLATE_CHOICES:
            raise ConfigError(
                f"data.template={template!r}: use one of {', '.join(TEMPLATE_CHOICES)}"
            )
        self.template = template

    def parse(self, data: dict[str, Any]) -> dict[str, Any]:

        return {"messages": prompt_messages(data)}

    def tokenize(self, example: dict[str, Any]) -> dict[str, Any]:
        messages = [dict(role=m["role"], content=m["content"]) for m in example["messages"]]
        ids = render_prompt(self.tokenizer, messages, self.template)
        truncated = len(ids) > self.max_length
        return {
            "prompt_ids": ids[-self.max_length :],
            "truncated": truncated,
            "keep": not truncated or self._question_kept(messages, len(ids)),
            "prompt_text": messages[-1]["content"],
        }

    def _question_kept(self, messages: list[dict[str, str]], n_ids: int) -> bool:
        """Whether the last `max_length` of the prompt's `n_ids` tokens start before the end of
        its question (the last turn's content), i.e. hold at least one token of it."""
        text = prompt_text(self.tokenizer, messages, self.template)
        question = messages[-1]["content"].strip()
        start = text.rfind(question)
        offsets = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)[
            "offset_mapping"
        ]
        if start < 0 or len(offsets) != n_ids:  # rendered otherwise: keep it, as before
            return True
        return offsets[n_ids - self.max_length][0] < start + len(question)

    def _cache_knobs(self) -> dict[str, Any]:
        return {"max_length": self.max_length, "template": self.template}

    def collate(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "prompt_ids": [
                b["prompt_ids"].tolist()
                if torch.is_tensor(b["prompt_ids"])
                else list(b["prompt_ids"])
                for b in batch
            ],
            "prompt_text": [b["prompt_text"] for b in batch],
        }
