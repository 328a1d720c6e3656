"""What every reward shares: the record it scores, and how it says a record is not for it.

A record is one RL prompt as the prompt data module builds it: `{"task": "mcq" | "ner" |
"free", "question": str, "gold": dict | None}` (see `data.prompts`). A pure reward is
`score(record, response, **options) -> float`; a batch reward (one that needs a model or a
server) is built by `make(**options, reward_model=, tokenizer=, template=)` and called on whole
lists, so it can batch its forward passes or its requests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

Record = Mapping[str, Any]
TASKS = ("mcq", "ner", "free")


class RewardNotApplicable(ValueError):
    """A reward asked to score a record it has no rule for (`mcq` on a free prompt, `ner`
    without gold entities). The composite turns it into a `ConfigError` naming the reward and
    the task: the mistake is the reward spec, not the data."""


class PureReward(Protocol):
    def __call__(self, record: Record, response: str, **options: Any) -> float: ...


class BatchReward(Protocol):
    def __call__(self, records: Sequence[Record], responses: Sequence[str]) -> list[float]: ...


def task_of(record: Record) -> str:
    """The record's task; a record without one is a free prompt."""
    return str(record.get("task") or "free")


def gold_of(record: Record, task: str, reward: str) -> Mapping[str, Any]:
    """The gold answer of a `task` record, or `RewardNotApplicable` saying why `reward` cannot
    score this record (another task, or no gold to compare with)."""
    actual = task_of(record)
    if actual != task:
        raise RewardNotApplicable(
            f"the {reward} reward scores {task} prompts, and this prompt's task is {actual}"
        )
    gold = record.get("gold")
    if not isinstance(gold, Mapping):
        raise RewardNotApplicable(f"the {reward} reward needs the {task} prompt's gold answer")
    return gold


def question_of(record: Record) -> str:
    return str(record.get("question") or "")
