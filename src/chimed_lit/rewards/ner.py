"""`ner`: span-level F1 of the (entity, type) pairs a response lists against the gold set.

The response format is the one the NER prompt asks for (`eval.prompts.ner_question`): one
`实体：类型` per line, or `无` when the text has none; it is read by eval's own parser
(`eval.parsing.parse_entity_lines`), with the record's `type_names` mapping what the model may
write (a type's display name or its code) to the code. Pairs are compared as sets, exact surface
and type: a repeated line counts once, so repeating a correct entity earns nothing more, and
listing candidates under every type pays in precision. A text with no gold entity scores 1.0
only for an explicit `无` (an empty answer is not one) and 0.0 for any entity listed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chimed_lit.eval.parsing import parse_entity_lines, says_no_entities
from chimed_lit.rewards.base import Record, RewardNotApplicable, gold_of


def gold_pairs(gold: Mapping[str, Any]) -> set[tuple[str, str]]:
    entities = gold.get("entities")
    if entities is None:
        raise RewardNotApplicable("the ner reward needs the prompt's gold entities")
    # stripped as the parser strips what the model writes: CCKS spans may end in a space
    return {(str(surface).strip(), str(code)) for surface, code in entities}


def type_names(gold: Mapping[str, Any]) -> dict[str, str]:
    """What the model may write as a type -> its code (codes map to themselves)."""
    names = {str(k): str(v) for k, v in (gold.get("type_names") or {}).items()}
    return {**{v: v for v in names.values()}, **names}


def predicted(response: str, gold: Mapping[str, Any]) -> set[tuple[str, str]]:
    return parse_entity_lines(response, type_names(gold))


def f1(pred: set[tuple[str, str]], gold: set[tuple[str, str]]) -> float:
    hits = len(pred & gold)
    if not hits:
        return 0.0
    precision, recall = hits / len(pred), hits / len(gold)
    return 2 * precision * recall / (precision + recall)


def score(record: Record, response: str) -> float:
    """F1 in [0, 1] of the response's (surface, type) pairs against the gold pairs."""
    gold = gold_of(record, "ner", "ner")
    want = gold_pairs(gold)
    pred = predicted(response, gold)
    if not want:
        return 1.0 if not pred and says_no_entities(response) else 0.0
    return f1(pred, want)
