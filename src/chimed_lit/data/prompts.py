"""`PromptDataModule`: prompts for RLHF rollouts, from any format the SFT stage reads.

The prompt is everything before the last assistant turn (or the whole conversation when it ends
with the user), rendered with the SFT rendering function plus the generation prompt, so the
policy continues exactly where SFT taught it to answer. Prompts longer than `max_length` keep
their end (the question being asked) and are counted as truncated; a prompt whose kept end holds
no token of its question (only the template's reply header fits) is dropped and counted, and
more than `data.max_dropped_fraction` dropped is a `DataError` (the base's rule).

Prompts with references (`data.task`, see `task_files.py`): MCQ and NER files are read by the
evaluation's readers and asked as `chimed-lit eval` asks them, carrying their gold answer; a free
prompt may carry a `reference` answer. Every batch holds `records`, one per prompt:
`{"task": "mcq"|"ner"|"free", "question": the last user turn, "gold": dict or None,
"messages": the prompt's turns}` (the reward model and the judge read the whole context).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import torch

from chimed_lit.chat.render import TEMPLATE_CHOICES, prompt_text, render_prompt
from chimed_lit.data.base import BaseDataModule, FieldError
from chimed_lit.data.conversation import prompt_messages
from chimed_lit.data.task_files import check_task_knobs, read_task_file, task_of
from chimed_lit.io.errors import ConfigError, DataError


class PromptDataModule(BaseDataModule):
    """Knobs (besides the base's): `template` (chimed|ziya|tokenizer), `max_length` (prompt
    tokens), `task` (auto|mcq|ner|free: how each file is read; auto: MCQ and NER files as
    eval detects them, anything else as free prompts), `task_format` (null, or the eval format
    of every MCQ/NER file: cmexam, cmmlu, ceval, cnmleqa, medqa, cmeee, ccks2019). Batches are
    lists of token-id prompts (the policy left-pads them to generate), their last user turns
    and their `records` (task, question, gold)."""

    demo_files = ("prompts.jsonl", "prompts_val.jsonl")
    example_noun = "prompts"
    drop_reason = "keep no token of their question within data.max_length={max_length}"

    def __init__(
        self,
        template: str = "chimed",
        task: str = "auto",
        task_format: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if template not in TEMPLATE_CHOICES:
            raise ConfigError(
                f"data.template={template!r}: use one of {', '.join(TEMPLATE_CHOICES)}"
            )
        check_task_knobs(task, task_format)
        self.template, self.task, self.task_format = template, task, task_format

    def parse(self, data: dict[str, Any]) -> dict[str, Any]:
        """A free prompt, with its `reference` answer as the gold when it has one."""
        reference = data.get("reference")
        if reference is not None and not (isinstance(reference, str) and reference.strip()):
            raise FieldError("reference", "expected a non-empty reference answer text")
        gold = {"reference": reference} if reference is not None else None
        return {"messages": prompt_messages(data), "task": "free", "gold": _json(gold)}

    def parsed_records(
        self, spec: str, seen_ids: dict[Any, str]
    ) -> Iterator[dict[str, Any] | DataError]:
        """MCQ and NER files through eval's readers (see `task_files`), the rest as the base.
        The gold answer is kept as JSON text (one column type for every task's gold)."""
        found = task_of(spec, self.task, self.task_format)
        if found.task == "free":
            yield from super().parsed_records(spec, seen_ids)
            return
        for item in read_task_file(spec, found, self.on_bad_record):
            yield item if isinstance(item, DataError) else {**item, "gold": _json(item["gold"])}

    def tokenize(self, example: dict[str, Any]) -> dict[str, Any]:
        messages = [dict(role=m["role"], content=m["content"]) for m in example["messages"]]
        ids = render_prompt(self.tokenizer, messages, self.template)
        truncated = len(ids) > self.max_length
        return {
            "prompt_ids": ids[-self.max_length :],
            "truncated": truncated,
            "keep": not truncated or self._question_kept(messages, len(ids)),
            "prompt_text": messages[-1]["content"],
            "task": example.get("task", "free"),
            "gold": example.get("gold", "null"),
            # the whole prompt conversation, for rewards that read context (reward_model, judge)
            "messages_json": json.dumps(messages, ensure_ascii=False),
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
            "records": [
                {
                    "task": b["task"],
                    "question": b["prompt_text"],
                    "gold": json.loads(b["gold"]),
                    "messages": json.loads(b.get("messages_json") or "[]"),
                }
                for b in batch
            ],
        }


def _json(gold: dict[str, Any] | None) -> str:
    return json.dumps(gold, ensure_ascii=False)


class MCQDemoPromptDataModule(PromptDataModule):
    """`PromptDataModule` whose default data (`train_files: null`) is the shipped verifiable
    demo task: four-option MCQs on the demo corpus's facts (`demo/mcq_train.jsonl`), held out
    in other phrasings and with unseen facts (`demo/mcq_val.jsonl`); see
    `scripts/make_demo_mcq.py`. Given `train_files` it reads them as `PromptDataModule` does."""

    demo_files = ("mcq_train.jsonl", "mcq_val.jsonl")
