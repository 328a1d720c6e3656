"""`format`: does the response have the shape its task asks for? 1.0 or 0.0.

- mcq: an answer letter set that `mcq` can read (strict: no contradictory statements), of
  the size the prompt asks for: one letter for a single-answer question (eval's prompt says
  when a question may have several, `（可能有多个正确答案）`, so `B或C` or `A、C` there is a
  hedge), and for a multi-answer one, not every option at once, since "all of them" is the
  classic dodge (a question whose answer really is every option fails this check and still
  earns `mcq`);
- ner: every piece of the answer is an `实体：类型` line whose type is one the prompt offered
  (its display name or code), or the whole answer is `无`; prose between the lines fails;
- free: some text.
In every task the response must not run on into a next turn (a role marker such as `[human]:`,
`<human>:` or `<|im_start|>` in it), the usual sign of a policy that does not stop.
Correctness is not looked at: that is `mcq`'s and `ner`'s job.
"""

from __future__ import annotations

import re

from chimed_lit.eval.parsing import entity_chunks, parse_entity_lines, says_no_entities
from chimed_lit.rewards import mcq, ner
from chimed_lit.rewards.base import Record, gold_of, task_of

_TURN_MARKER = re.compile(r"\[(?:human|bot)\]:|<(?:human|bot)>:|<\|im_(?:start|end)\|>", re.I)


def runs_on(response: str) -> bool:
    """The response contains a chat role marker: it kept writing the next turns."""
    return bool(_TURN_MARKER.search(response))


def mcq_ok(record: Record, response: str) -> bool:
    gold = gold_of(record, "mcq", "format")
    pred = mcq.chosen(response, gold)
    if len(mcq.gold_answers(gold)) == 1:
        return len(pred) == 1
    letters = set(mcq.letters_of(gold))
    return bool(pred) and not (len(letters) > 1 and pred == letters)


def ner_ok(record: Record, response: str) -> bool:
    gold = gold_of(record, "ner", "format")
    if says_no_entities(response):
        return True
    names = ner.type_names(gold)
    chunks = entity_chunks(response)
    if not chunks:
        return False
    for chunk in chunks:
        pairs = parse_entity_lines(chunk, names)
        if not pairs:
            return False
        if names and any(code not in names.values() for _, code in pairs):
            return False  # a type the prompt did not offer
    return True


def score(record: Record, response: str) -> float:
    """1.0 when the response has its task's shape (see the module), else 0.0."""
    if not response.strip() or runs_on(response):
        return 0.0
    task = task_of(record)
    if task == "mcq":
        return float(mcq_ok(record, response))
    if task == "ner":
        return float(ner_ok(record, response))
    return 1.0
