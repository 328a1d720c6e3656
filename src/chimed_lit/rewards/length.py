"""`length`: 1.0 inside a target range of characters, falling linearly outside it.

Why characters: they are what a reader sees and what the prompt's task fixes (a letter for an
MCQ, a few lines for NER, a paragraph for advice), the same for every tokenizer. The response
is measured stripped of surrounding whitespace. Below `min_chars` the score is
`length / min_chars` (so the empty answer scores 0); above `max_chars` it falls by
1/`decay_chars` per extra character and is 0 from `max_chars + decay_chars` on, so padding an
answer costs, and a policy that rambles gets a gradient back toward the range rather than a
cliff.
"""

from __future__ import annotations

from chimed_lit.rewards.base import Record


def problems(min_chars: int = 1, max_chars: int = 512, decay_chars: int | None = None) -> list[str]:
    """What is wrong with these options, one sentence each (checked before training starts)."""
    out = []
    if min_chars < 0:
        out.append(f"length.min_chars={min_chars} must be >= 0")
    if max_chars < max(min_chars, 1):
        out.append(f"length.max_chars={max_chars} must be >= min_chars ({min_chars}) and >= 1")
    if decay_chars is not None and decay_chars < 1:
        out.append(f"length.decay_chars={decay_chars} must be >= 1")
    return out


def score(
    record: Record,
    response: str,
    *,
    min_chars: int = 1,
    max_chars: int = 512,
    decay_chars: int | None = None,
) -> float:
    """1.0 in [min_chars, max_chars]; linear below and above (`decay_chars`, default
    `max_chars`: twice the maximum scores 0)."""
    n = len(response.strip())
    if n < min_chars:
        return n / min_chars
    if n <= max_chars:
        return 1.0
    decay = decay_chars or max_chars
    return max(0.0, 1.0 - (n - max_chars) / decay)
