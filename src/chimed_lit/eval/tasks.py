"""One entry point per evaluation task, for the CLI: files in, one result dict out.

`run_eval("mcq", model, tokenizer, files=[...])` reads each file (format auto-detected or
`fmt=`), runs the task's runner and keys metrics and predictions by file stem, since each
data set is its own column in the paper's tables. `run_eval("scale", ..., instrument=...)`
evaluates one attitude scale ("cami"/"mica" with `items_file`, "demo", or a YAML path).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .formats import read_examples
from .keys_builtin import load_scale
from .runners_dialogue import run_dialogue
from .runners_mcq import run_mcq
from .runners_ner import run_ner
from .runners_scales import run_scale

TASKS = ("ner", "mcq", "dialogue", "scale")
_RUNNERS = {"ner": run_ner, "mcq": run_mcq, "dialogue": run_dialogue}


def run_eval(
    task: str,
    model: Any,
    tokenizer: Any,
    *,
    files: Sequence[str | Path] = (),
    fmt: str | None = None,
    fewshot_file: str | Path | None = None,
    k_shot: int = 0,
    instrument: str | Path | None = None,
    items_file: str | Path | None = None,
    limit: int | None = None,
    progress: bool = False,
    **runner_kwargs: Any,
) -> dict[str, Any]:
    """Evaluate `task` ("ner", "mcq", "dialogue" or "scale"); extra keyword arguments go to
    the runner (batch_size, max_new_tokens, render, modes, ...)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; one of {TASKS}")
    if task == "scale":
        if instrument is None:
            raise ValueError("task 'scale' needs instrument= (cami, mica, demo or a YAML path)")
        inst = load_scale(instrument, items_file)
        result = run_scale(model, tokenizer, inst, limit=limit, progress=progress, **runner_kwargs)
        result["key_status"] = inst.key_status
        return result
    if not files:
        raise ValueError(f"task {task!r} needs at least one data file")
    shots: list[Any] = []
    if fewshot_file is not None and k_shot > 0:
        shots = read_examples(fewshot_file, fmt=None, task=task).examples
    runner = _RUNNERS[task]
    out: dict[str, Any] = {"task": task, "files": [], "metrics": {}, "predictions": {}}
    out["skipped"] = {}
    for path in files:
        data = read_examples(path, fmt=fmt, task=task)
        name = Path(path).stem
        extra = {"fewshot": shots, "k_shot": k_shot} if task in ("ner", "mcq") else {}
        result = runner(
            model,
            tokenizer,
            data.examples,
            limit=limit,
            progress=progress,
            **extra,
            **runner_kwargs,
        )
        out["files"].append({"name": name, "path": str(path), "format": data.format})
        out["metrics"][name] = result["metrics"]
        out["predictions"][name] = result["predictions"]
        out["skipped"][name] = dict(data.skipped)
    return out
