"""Dialogue evaluation: generate the last doctor turn from the history, then score it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chimed_lit.chat.render import Render, prompt_renderer

from .lm import generate
from .metrics_dialogue import dialogue_metrics
from .ngram_metrics import Smoothing
from .prompts import dialogue_messages
from .records import DialogueExample


def run_dialogue(
    model: Any,
    tokenizer: Any,
    examples: Sequence[DialogueExample],
    *,
    render: Render | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 256,
    max_history_turns: int | None = None,
    smoothing: Smoothing = "none",
    word_level: bool = True,
    limit: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Returns {"task": "dialogue", "metrics": dialogue_metrics(...), "predictions": [...]}."""
    examples = list(examples)[: limit if limit is not None else None]
    render = render or prompt_renderer(tokenizer, "chimed")  # the training renderer
    prompts = [render(dialogue_messages(ex, max_history_turns)) for ex in examples]
    outputs = generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        progress=progress,
        desc="dialogue",
    )
    refs = [ex.reference for ex in examples]
    metrics = dialogue_metrics(outputs, refs, smoothing=smoothing, word_level=word_level)
    predictions = [
        {
            "line": ex.source_line,
            "n_history_turns": len(ex.history),
            "prediction": out,
            "reference": ref,
        }
        for ex, out, ref in zip(examples, outputs, refs, strict=True)
    ]
    return {"task": "dialogue", "metrics": metrics, "predictions": predictions}
