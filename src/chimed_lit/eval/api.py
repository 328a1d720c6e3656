"""The evaluation library's entry points shared by the CLI and the training callbacks:
the prompt renderer for a template name, bad-input errors as `ChimedError`s, and each task's
headline numbers. Nothing here knows about the command line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chimed_lit.chat.render import Render, prompt_renderer
from chimed_lit.io.errors import DataError


def make_render(template: str, tokenizer: Any) -> Render:
    """Prompt rendering for `eval.template`: `chimed` ([human]:/[bot]:), `ziya` (<human>:/<bot>:)
    or `tokenizer` (its own chat template), by the renderer training uses
    (`chat.render.prompt_text`), so a model is evaluated on the prompts it was trained on."""
    return prompt_renderer(tokenizer, template, key="eval.template")


def library_call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the eval library, turning its bad-input errors into `ChimedError`s."""
    from chimed_lit.eval.errors import EvalDataError

    try:
        return fn(*args, **kwargs)
    except EvalDataError as e:
        where = f"line {e.line}" if e.line is not None else None
        raise DataError(e.file or "<input>", e.message, where=where, field=e.field) from None


def headline(task: str, result: dict[str, Any]) -> dict[str, Any]:
    """The paper's headline numbers of one result, one column per file (and mode):
    ner f1, mcq accuracy, dialogue bleu_4 / rouge_l, scale bias_score."""
    metrics = result.get("metrics", {})
    cols: dict[str, Any] = {}
    if task in ("ner", "dialogue"):
        keys = ("f1",) if task == "ner" else ("bleu_4", "rouge_l")
        for file, m in metrics.items():
            cols.update({f"{task}/{file}/{k}": m.get(k) for k in keys})
    elif task == "mcq":
        for file, m in metrics.items():
            mode = next(iter(m), None)
            if mode is not None:
                cols[f"mcq/{file}/{mode}/accuracy"] = m[mode].get("accuracy")
    else:
        name = str(result.get("task", task)).split(":", 1)[-1]
        mode = next(iter(metrics), None)
        if mode is not None:
            cols[f"scale/{name}/{mode}/bias_score"] = metrics[mode].get("bias_score")
    return cols
