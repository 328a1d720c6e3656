"""`mcq`: is the chosen option set the gold one?

The answer is read from free text by eval's own parser (`eval.parsing.parse_choice_letters`)
in its strict mode: `答案：B`, `B。`, `选B`, `（B）`, `\\boxed{B}`, `A、C` and the option's text
instead of its letter all read as the options they name, while what a policy could use to game
the reward reads as no answer: statements that disagree (`答案：B 答案：C`), hedges (`B或C`),
the option list echoed back. An answer naming every option (`ABCDE`, `A B C D E`) is read as
that set, which matches the gold only when every option is correct.

Rule: exact-set match, 1.0 or 0.0. With `partial_credit=True`, an answer that names only
correct options earns the fraction of the gold it names, |pred| / |gold| (so `A` for gold `AC`
earns 0.5), and any wrong option earns 0: a guess that adds letters never beats leaving them
out, so listing options cannot climb the reward.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chimed_lit.eval.parsing import parse_choice_letters
from chimed_lit.rewards.base import Record, RewardNotApplicable, gold_of

_DEFAULT_LETTERS = "ABCDE"


def letters_of(gold: Mapping[str, Any]) -> str:
    """The option letters of a question: its options' keys, else A-E and any gold letter."""
    options = gold.get("options") or {}
    letters = [str(k) for k in options] or list(_DEFAULT_LETTERS)
    letters += [a for a in gold_answers(gold) if a not in letters]
    return "".join(letters)


def gold_answers(gold: Mapping[str, Any]) -> frozenset[str]:
    answers = gold.get("answers") or []
    if isinstance(answers, str):  # "AC"
        answers = list(answers)
    return frozenset(str(a).strip().upper() for a in answers if str(a).strip())


def chosen(response: str, gold: Mapping[str, Any]) -> frozenset[str]:
    """The option letters `response` answers with (empty: no readable answer)."""
    options = {str(k): str(v) for k, v in (gold.get("options") or {}).items()}
    return parse_choice_letters(response, letters_of(gold), options or None, strict=True)


def score(record: Record, response: str, *, partial_credit: bool = False) -> float:
    """1.0 for the exact gold option set, else 0.0 (partial credit: see the module)."""
    gold = gold_of(record, "mcq", "mcq")
    answers = gold_answers(gold)
    if not answers:
        raise RewardNotApplicable("the mcq reward needs the prompt's gold answer letters")
    pred = chosen(response, gold)
    if not pred:
        return 0.0
    if pred == answers:
        return 1.0
    if partial_credit and pred <= answers:
        return len(pred) / len(answers)
    return 0.0
