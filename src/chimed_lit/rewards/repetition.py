"""`repetition`: 1.0 for text without repeated n-grams, falling as repetition grows.

Degenerate loops (`答案：B 答案：B ...`, a sentence over and over) are the commonest failure of
a policy under RL, and one that a correctness reward alone pays for. The measure is the share of
repeated character n-grams (whitespace collapsed; characters because Chinese has no spaces to
split words at): repeated = 1 - distinct/total. Natural text repeats a little (a drug name
twice), so the first `tolerance` of repetition is free; the score is then
`1 - (repeated - tolerance) / (1 - tolerance)`, floored at 0. The empty answer scores 0; an
answer shorter than `n` characters (a bare `B`) cannot repeat and scores 1.
"""

from __future__ import annotations

import re

from chimed_lit.rewards.base import Record


def problems(n: int = 4, tolerance: float = 0.1) -> list[str]:
    out = []
    if n < 1:
        out.append(f"repetition.n={n} must be >= 1")
    if not 0.0 <= tolerance < 1.0:
        out.append(f"repetition.tolerance={tolerance} must be in [0, 1)")
    return out


def repeated_fraction(text: str, n: int = 4) -> float:
    """1 - distinct/total over the character n-grams of `text` (0 when it has none)."""
    chars = re.sub(r"\s+", " ", text.strip())
    grams = [chars[i : i + n] for i in range(len(chars) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def score(record: Record, response: str, *, n: int = 4, tolerance: float = 0.1) -> float:
    """1.0 up to `tolerance` repeated n-grams, then linear down to 0.0 (see the module)."""
    if not response.strip():
        return 0.0
    excess = max(0.0, repeated_fraction(response, n) - tolerance)
    return max(0.0, 1.0 - excess / (1.0 - tolerance))
