"""NER by prompted generation: ask for `实体：类型` lines, parse them, score (surface, type).

Type names shown to the model are readable Chinese names (CMeEE's codes `dis`, `sym`... are
shown as 疾病, 临床表现...); parsed answers are mapped back to the dataset's codes, so a model
that answers with either the name or the code is scored the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chimed_lit.chat.render import Render, prompt_renderer

from .lm import generate
from .metrics_ner import ner_scores
from .parsing import parse_entity_lines
from .prompts import ner_messages, ner_type_maps
from .records import NERExample


def run_ner(
    model: Any,
    tokenizer: Any,
    examples: Sequence[NERExample],
    *,
    fewshot: Sequence[NERExample] = (),
    k_shot: int = 0,
    types: Sequence[str] | None = None,
    type_names: Mapping[str, str] | None = None,
    render: Render | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 256,
    limit: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Returns {"task": "ner", "metrics": ner_scores(...), "predictions": [...]}.

    `types` defaults to every type in the examples and exemplars; `type_names` maps a type
    code to its display name (CMeEE names built in; other codes are shown as they are)."""
    examples = list(examples)[: limit if limit is not None else None]
    shots = list(fewshot)[:k_shot]
    display, code_to_name, reverse = ner_type_maps([*examples, *shots], types, type_names)
    render = render or prompt_renderer(tokenizer, "chimed")  # the training renderer
    prompts = [render(ner_messages(ex, display, code_to_name, shots)) for ex in examples]
    outputs = generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        progress=progress,
        desc="ner",
    )
    gold = [{(e.surface, e.type) for e in ex.entities} for ex in examples]
    pred = [parse_entity_lines(out, reverse) for out in outputs]
    predictions = [
        {
            "line": ex.source_line,
            "output": out,
            "predicted": sorted(p),
            "gold": sorted(g),
        }
        for ex, out, p, g in zip(examples, outputs, pred, gold, strict=True)
    ]
    metrics = ner_scores(gold, pred)
    metrics["n"] = len(examples)
    return {"task": "ner", "metrics": metrics, "predictions": predictions}
