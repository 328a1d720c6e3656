"""Attitude scales prompted to a model: each item in natural and reversed option order,
answered by next-token probability over the option labels ("logprob") and by generation
parsed robustly ("generate"); scored by `scales.score_answers`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from chimed_lit.chat.render import Render, prompt_renderer

from .instruments import Instrument
from .lm import choice_logprobs, generate
from .parsing import parse_scale_answer
from .prompts import SCALE_LABELS, scale_question
from .scales import Order, Presentation, score_answers, shown_options

SCALE_MODES = ("logprob", "generate")
ORDERS: tuple[Order, Order] = ("natural", "reversed")


def _softmax(xs: Sequence[float]) -> list[float]:
    top = max(xs)
    exps = [math.exp(x - top) for x in xs]
    total = sum(exps)
    return [e / total for e in exps]


def run_scale(
    model: Any,
    tokenizer: Any,
    instrument: Instrument,
    *,
    modes: Sequence[str] = SCALE_MODES,
    render: Render | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 16,
    degenerate_threshold: float = 0.75,
    limit: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Returns {"task": "scale:<name>", "metrics": {mode: score_answers(...)}, "predictions"}."""
    unknown = set(modes) - set(SCALE_MODES)
    if unknown:
        raise ValueError(f"unknown scale modes {sorted(unknown)}; choose from {SCALE_MODES}")
    inst = replace(instrument, items=instrument.items[: limit if limit is not None else None])
    k = inst.n_options
    labels = list(SCALE_LABELS[:k])
    jobs = [(item, order) for item in inst.items for order in ORDERS]
    render = render or prompt_renderer(tokenizer, "chimed")  # the training renderer
    prompts = [
        render([{"role": "user", "content": scale_question(item.text, shown_options(inst, order))}])
        for item, order in jobs
    ]
    records = [
        {"number": it.number, "subscale": it.subscale, "reverse": it.reverse} for it in inst.items
    ]
    per_job: list[dict[str, Any]] = [{} for _ in jobs]
    answers: dict[str, dict[int, list[Presentation]]] = {m: {} for m in modes}
    if "logprob" in modes:
        scores = choice_logprobs(
            model,
            tokenizer,
            prompts,
            [labels] * len(prompts),
            batch_size=batch_size,
            progress=progress,
            desc="scale logprob",
        )
        for (item, order), s, rec in zip(jobs, scores, per_job, strict=True):
            probs = _softmax(s)
            pos = max(range(k), key=lambda i: probs[i])
            rec["probs"] = probs
            rec["logprob_position"] = pos
            answers["logprob"].setdefault(item.number, []).append(Presentation(order, pos))
    if "generate" in modes:
        outs = generate(
            model,
            tokenizer,
            prompts,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            progress=progress,
            desc="scale generate",
        )
        for (item, order), out, rec in zip(jobs, outs, per_job, strict=True):
            pos = parse_scale_answer(out, shown_options(inst, order))
            rec["generated"] = out
            rec["generate_position"] = pos
            answers["generate"].setdefault(item.number, []).append(Presentation(order, pos, out))
    for i, rec in enumerate(records):
        rec["natural"], rec["reversed"] = per_job[2 * i], per_job[2 * i + 1]
    metrics = {m: score_answers(inst, answers[m], degenerate_threshold) for m in modes}
    return {"task": f"scale:{inst.name}", "metrics": metrics, "predictions": records}
