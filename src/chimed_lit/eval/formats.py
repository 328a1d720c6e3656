"""Format registry and auto-detection from a file's shape (header or first record's keys).

`read_examples(path)` picks the reader; `fmt=` overrides detection (for a file whose shape is
ambiguous or misleading), and `task=` checks the format belongs to the task being run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import readers_dialogue as dlg
from . import readers_mcq as mcq
from . import readers_ner as ner
from .errors import EvalDataError
from .records import ReadResult
from .sources import csv_header, iter_json_records

FORMATS: dict[str, tuple[str, Callable[..., ReadResult[Any]]]] = {
    "cmeee": ("ner", ner.read_cmeee),
    "ccks2019": ("ner", ner.read_ccks2019),
    "ceval": ("mcq", mcq.read_ceval_cmmlu),
    "cmmlu": ("mcq", mcq.read_ceval_cmmlu),
    "cmexam": ("mcq", mcq.read_cmexam),
    "cnmleqa": ("mcq", mcq.read_cnmleqa),
    "medqa": ("mcq", mcq.read_medqa),
    "covid_dialogue": ("dialogue", dlg.read_covid_dialogue),
    "cmtmedqa": ("dialogue", dlg.read_cmtmedqa),
    "sharegpt": ("dialogue", dlg.read_sharegpt),
    "qa_csv": ("dialogue", dlg.read_qa_csv),
}


def _format_of_record(rec: Any) -> str | None:
    if isinstance(rec, list):
        return "covid_dialogue" if all(isinstance(x, str) for x in rec) else None
    if not isinstance(rec, dict):
        return None
    keys = set(rec)
    if "entity_list" in keys:
        return "ccks2019"
    if {"text", "entities"} <= keys:
        return "cmeee"
    if "opa" in keys and "answer" in keys:
        return "cnmleqa"
    if {"question", "options", "answer_idx"} <= keys:
        return "medqa"
    if "conversations" in keys:
        return "sharegpt"
    if ("instruction" in keys or "instruct" in keys) and "output" in keys:
        return "cmtmedqa"
    return None


def _format_of_csv(header: list[str]) -> str | None:
    cols = {c.lower() for c in header}
    if {"question", "options", "answer"} <= cols:
        return "cmexam"
    if {"question", "a", "b", "c", "d", "answer"} <= cols:
        return "ceval"
    if {"ask", "answer"} <= cols:
        return "qa_csv"
    return None


def detect_format(path: str | Path) -> str:
    """Name of the format in FORMATS, from the CSV header or the first JSON record's keys."""
    path = Path(path)
    if path.suffix.lower() in {".csv", ".tsv"}:
        header = csv_header(path)
        found = _format_of_csv(header)
        if found is None:
            raise EvalDataError(path, 1, None, f"unrecognised CSV header {header}")
        return found
    first = next(iter_json_records(path), None)
    if first is None:
        raise EvalDataError(path, None, None, "no records")
    found = _format_of_record(first[1])
    if found is None:
        keys = sorted(first[1]) if isinstance(first[1], dict) else type(first[1]).__name__
        raise EvalDataError(path, first[0], None, f"cannot tell the format from {keys}")
    return found


def read_examples(
    path: str | Path, fmt: str | None = None, task: str | None = None, **kwargs: Any
) -> ReadResult[Any]:
    """Read any supported file; `fmt` overrides detection, `task` ("ner"/"mcq"/"dialogue")
    is checked against the format so a dialogue file is never scored as MCQ."""
    path = Path(path)
    if not path.is_file():
        raise EvalDataError(path, None, None, "no such file")
    name = fmt or detect_format(path)
    if name not in FORMATS:
        raise EvalDataError(path, None, None, f"unknown format {name!r}; one of {sorted(FORMATS)}")
    fmt_task, reader = FORMATS[name]
    if task is not None and task != fmt_task:
        raise EvalDataError(
            path, None, None, f"format {name!r} is for task {fmt_task!r}, not {task!r}"
        )
    return reader(path, **kwargs)
