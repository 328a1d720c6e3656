"""Groups of G sampled responses per prompt, and the dynamic-sampling buffer that holds them.

The GRPO family learns from the spread of rewards inside a group: a group whose G rewards all
agree has zero advantage everywhere and teaches nothing. DAPO (Yu et al. 2025, section 3.2,
"dynamic sampling") drops such groups and samples more prompts until a batch is full. Here a
training step samples `data.batch_size` prompts, keeps the informative groups in a
`GroupBuffer`, and updates once the buffer holds a full batch; the rest waits for the next
step. The buffer is part of the checkpoint, so an exact resume continues with the same groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Group:
    """One prompt and its G responses: token ids, EOS flags, behaviour log-probs (the policy
    that sampled them), texts, the total reward and each component's raw value."""

    prompt: list[int]
    prompt_text: str
    record: dict[str, Any]
    replies: list[dict[str, Any]]
    rewards: list[float] = field(default_factory=list)
    components: dict[str, list[float]] = field(default_factory=dict)

    @property
    def degenerate(self) -> bool:
        """Every response got the same reward: a zero advantage for the whole group (exact
        equality, as the advantage estimators test it)."""
        return max(self.rewards) == min(self.rewards)

    def state(self) -> dict[str, Any]:
        """A checkpointable form (lists, floats and tensors only: `weights_only` loads it)."""
        return {
            "prompt": list(self.prompt),
            "prompt_text": self.prompt_text,
            "record": self.record,
            "replies": [
                {
                    "ids": list(r["ids"]),
                    "finished": bool(r["finished"]),
                    "text": r["text"],
                    "logps": r["logps"].detach().cpu(),
                }
                for r in self.replies
            ],
            "rewards": list(self.rewards),
            "components": {k: list(v) for k, v in self.components.items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Group:
        return cls(**state)


def make_groups(batch: dict[str, Any], replies: list[dict[str, Any]], size: int) -> list[Group]:
    """Cut `generate`'s replies (prompt-major: G per prompt) into one group per prompt."""
    records = batch.get("records") or [
        {"task": "free", "question": t, "gold": None} for t in batch["prompt_text"]
    ]
    return [
        Group(prompt, text, record, replies[i * size : (i + 1) * size])
        for i, (prompt, text, record) in enumerate(
            zip(batch["prompt_ids"], batch["prompt_text"], records, strict=True)
        )
    ]


def flatten(groups: list[Group]) -> dict[str, Any]:
    """The groups as rows (prompt-major): prompts, replies, records, rewards [N]."""
    return {
        "prompts": [g.prompt for g in groups for _ in g.replies],
        "replies": [r for g in groups for r in g.replies],
        "records": [g.record for g in groups for _ in g.replies],
        "rewards": torch.tensor([x for g in groups for x in g.rewards], dtype=torch.float32),
    }


class GroupBuffer:
    """Informative groups waiting for a full batch (`dynamic_sampling`), and how many steps in a
    row they have waited."""

    def __init__(self) -> None:
        self.groups: list[Group] = []
        self.waited = 0

    def __len__(self) -> int:
        return len(self.groups)

    def add(self, groups: list[Group]) -> None:
        self.groups.extend(groups)

    def take(self, n: int) -> list[Group]:
        out, self.groups = self.groups[:n], self.groups[n:]
        self.waited = 0
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"groups": [g.state() for g in self.groups], "waited": self.waited}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.groups = [Group.from_state(s) for s in state.get("groups", [])]
        self.waited = int(state.get("waited", 0))
