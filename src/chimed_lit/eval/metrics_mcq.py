"""MCQ accuracy, overall and per subject, by exact match of the answer letter SET (a
multi-answer question is right only if every letter, and no other, is chosen)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence


def mcq_accuracy(
    gold: Sequence[Iterable[str]],
    predicted: Sequence[Iterable[str] | None],
    subjects: Sequence[str | None] | None = None,
) -> dict[str, object]:
    """`accuracy`, `n`, `n_correct`, `n_unanswered` and `per_subject` {subject: accuracy}.

    A None or empty prediction counts as wrong (and as unanswered); subjects that are None
    are left out of `per_subject` but still count overall.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold answers but {len(predicted)} predictions")
    subjects = subjects if subjects is not None else [None] * len(gold)
    right, total = Counter[str](), Counter[str]()
    n_correct = n_unanswered = 0
    for g, p, s in zip(gold, predicted, subjects, strict=True):
        chosen = frozenset(p) if p else frozenset()
        ok = bool(chosen) and chosen == frozenset(g)
        n_correct += ok
        n_unanswered += not chosen
        if s is not None:
            total[s] += 1
            right[s] += ok
    n = len(gold)
    return {
        "accuracy": n_correct / n if n else 0.0,
        "n": n,
        "n_correct": n_correct,
        "n_unanswered": n_unanswered,
        "per_subject": {s: right[s] / total[s] for s in sorted(total)},
    }
