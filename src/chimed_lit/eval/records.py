"""Typed evaluation records shared by readers, runners and metrics.

Offsets are half-open (end exclusive) everywhere inside the package, whatever the source
convention was; readers convert and check `text[start:end] == surface`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar


@dataclass(frozen=True)
class Entity:
    start: int
    end: int  # exclusive
    type: str
    surface: str


@dataclass(frozen=True)
class NERExample:
    text: str
    entities: tuple[Entity, ...]
    source_line: int | None = None


@dataclass(frozen=True)
class MCQExample:
    question: str
    options: dict[str, str]  # letter -> text, in letter order
    answers: frozenset[str]
    subject: str | None = None
    source_line: int | None = None


@dataclass(frozen=True)
class DialogueExample:
    history: tuple[tuple[str, str], ...]  # (role, text); role is "user", "assistant" or "system"
    reference: str  # the last doctor/assistant turn
    source_line: int | None = None


T = TypeVar("T")


@dataclass
class ReadResult(Generic[T]):
    """What a reader returns: the examples plus counts of records it skipped, by reason."""

    examples: list[T]
    path: Path
    format: str
    task: str
    skipped: Counter[str] = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.examples)
