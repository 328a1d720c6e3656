"""Multiple-choice evaluation in three modes, each scored by exact answer-set match.

- "letter": log-likelihood of each option letter as the next token after the prompt; the
  most likely letter is the answer (one letter, so multi-answer questions cannot be right).
- "option_text": log-likelihood of each option's full text after the prompt, divided by its
  token count (so long options are not penalised for length); argmax.
- "generate": greedy answer, parsed into a letter set (`parse_choice_letters`).
Few-shot exemplars (e.g. a dev file) prefer the question's own subject.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chimed_lit.chat.render import Render, prompt_renderer

from .lm import choice_logprobs, continuation_logprobs, generate
from .metrics_mcq import mcq_accuracy
from .parsing import parse_choice_letters
from .prompts import mcq_messages
from .records import MCQExample

MODES = ("letter", "option_text", "generate")


def pick_shots(example: MCQExample, pool: Sequence[MCQExample], k: int) -> list[MCQExample]:
    """Up to k exemplars: same subject first, then others, never the question itself."""
    if k <= 0:
        return []
    others = [p for p in pool if p.question != example.question]
    same = [p for p in others if p.subject == example.subject]
    rest = [p for p in others if p.subject != example.subject]
    return (same + rest)[:k]


def _best(keys: Sequence[str], scores: Sequence[float]) -> str:
    return keys[max(range(len(keys)), key=lambda i: scores[i])]


def run_mcq(
    model: Any,
    tokenizer: Any,
    examples: Sequence[MCQExample],
    *,
    modes: Sequence[str] = MODES,
    fewshot: Sequence[MCQExample] = (),
    k_shot: int = 0,
    render: Render | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 16,
    limit: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Returns {"task": "mcq", "metrics": {mode: mcq_accuracy(...)}, "predictions": [...]}."""
    unknown = set(modes) - set(MODES)
    if unknown:
        raise ValueError(f"unknown MCQ modes {sorted(unknown)}; choose from {MODES}")
    examples = list(examples)[: limit if limit is not None else None]
    render = render or prompt_renderer(tokenizer, "chimed")  # the training renderer
    prompts = [render(mcq_messages(ex, pick_shots(ex, fewshot, k_shot))) for ex in examples]
    preds: list[dict[str, Any]] = [
        {"line": ex.source_line, "subject": ex.subject, "gold": "".join(sorted(ex.answers))}
        for ex in examples
    ]
    chosen: dict[str, list[frozenset[str]]] = {}
    if "letter" in modes:
        letters = [list(ex.options) for ex in examples]
        scores = choice_logprobs(
            model,
            tokenizer,
            prompts,
            letters,
            batch_size=batch_size,
            progress=progress,
            desc="mcq letter",
        )
        chosen["letter"] = [
            frozenset({_best(ls, s)}) for ls, s in zip(letters, scores, strict=True)
        ]
        for p, ls, s in zip(preds, letters, scores, strict=True):
            p["letter_logprobs"] = dict(zip(ls, s, strict=True))
    if "option_text" in modes:
        ctx = [p for p, ex in zip(prompts, examples, strict=True) for _ in ex.options]
        cont = [t for ex in examples for t in ex.options.values()]
        scored = continuation_logprobs(
            model, tokenizer, ctx, cont, batch_size=batch_size, progress=progress, desc="mcq text"
        )
        i, picks = 0, []
        for p, ex in zip(preds, examples, strict=True):
            keys = list(ex.options)
            norm = [s / n for s, n in scored[i : i + len(keys)]]
            i += len(keys)
            picks.append(frozenset({_best(keys, norm)}))
            p["option_text_logprobs_per_token"] = dict(zip(keys, norm, strict=True))
        chosen["option_text"] = picks
    if "generate" in modes:
        outs = generate(
            model,
            tokenizer,
            prompts,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            progress=progress,
            desc="mcq generate",
        )
        chosen["generate"] = [
            parse_choice_letters(o, list(ex.options), ex.options)
            for o, ex in zip(outs, examples, strict=True)
        ]
        for p, o in zip(preds, outs, strict=True):
            p["generated"] = o
    gold = [ex.answers for ex in examples]
    subjects = [ex.subject for ex in examples]
    metrics: dict[str, Any] = {}
    for mode in MODES:
        if mode in chosen:
            metrics[mode] = mcq_accuracy(gold, chosen[mode], subjects)
            for p, c in zip(preds, chosen[mode], strict=True):
                p[mode] = "".join(sorted(c))
    return {"task": "mcq", "metrics": metrics, "predictions": preds}
