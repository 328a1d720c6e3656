"""RL prompts with a gold answer, read from MCQ and NER files by the evaluation's own readers.

A file of CMExam, CMMLU/C-Eval, CNMLEQA or MedQA questions, or of CMeEE or CCKS-2019 entities,
is read by `chimed_lit.eval` (format detected per file as `chimed-lit eval` detects it, or
named by `data.task_format`), and each example becomes the zero-shot prompt that
`chimed-lit eval task=mcq` (generate mode) or `task=ner` asks (`eval.prompts.mcq_messages`,
`ner_messages`), with its gold answer for the reward:
- mcq: `{"answers": ["B"] (every letter of a multi-answer question), "options": {"A": ...}}`;
- ner: `{"entities": [["surface", "type_code"], ...], "type_names": {name or code: code}}`,
  the entity types shown in the prompt being those of the whole file, as eval shows them.

A bad record (an answer that names no option, an entity span that is not its text, a missing
field ...) raises the usual `DataError` with file, line and field; with `data.on_bad_record=skip`
it is counted and the file's other records are kept. The readers stop at the first bad record,
so a file that has one is then read again one record at a time (each record in a file of its own
with the same name), which only files with bad records pay for.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from chimed_lit.eval.errors import EvalDataError
from chimed_lit.eval.formats import FORMATS, detect_format
from chimed_lit.eval.prompts import mcq_messages, ner_messages, ner_type_maps
from chimed_lit.eval.records import MCQExample, NERExample
from chimed_lit.eval.sources import iter_json_array, read_text
from chimed_lit.io.errors import ConfigError, DataError

TASKS = ("auto", "mcq", "ner", "free")
# eval's formats whose examples carry a gold answer (dialogue formats are free prompts here)
TASK_FORMATS = tuple(name for name, (task, _) in FORMATS.items() if task in ("mcq", "ner"))
_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl")
_CSV_FORMATS = ("ceval", "cmmlu", "cmexam")  # eval reads these with its CSV reader


def task_problems(task: Any, task_format: Any) -> list[str]:
    """The problems of `data.task` / `data.task_format`, one sentence each."""
    out = []
    if task not in TASKS:
        out.append(f"data.task={task!r}: use one of {', '.join(TASKS)}")
    if task_format is not None and task_format not in TASK_FORMATS:
        out.append(
            f"data.task_format={task_format!r}: use null (detected per file) or one of "
            f"{', '.join(TASK_FORMATS)}"
        )
    elif (
        task_format is not None
        and task in ("mcq", "ner", "free")
        and (FORMATS[task_format][0] != task)
    ):
        out.append(
            f"data.task_format={task_format} reads {FORMATS[task_format][0]} files, "
            f"not data.task={task}"
        )
    return out


@dataclass(frozen=True)
class TaskFile:
    """How one train/val file is read: `task` mcq|ner by eval's reader `fmt`, or free."""

    task: str
    fmt: str | None = None


def task_of(spec: str, task: str = "auto", task_format: str | None = None) -> TaskFile:
    """Which reading `spec` gets. `auto`: a local CSV/JSON/JSONL file that eval recognises as
    MCQ or NER is read as such, anything else (chat records, Hub ids, Parquet, TXT) as free
    prompts. `mcq`/`ner`: the file must be one of that task's formats (else `DataError`)."""
    if task == "free":
        return TaskFile("free")
    path = Path(spec).expanduser()
    fmt, why = task_format, "its shape is not one eval reads"
    if fmt is None and path.is_file() and path.suffix.lower() in _SUFFIXES:
        try:
            fmt = detect_format(path)
        except EvalDataError as e:
            why = e.message
    found = FORMATS[fmt][0] if fmt is not None else None
    if task == "auto":
        return TaskFile(found, fmt) if found in ("mcq", "ner") else TaskFile("free")
    if not path.is_file():
        raise DataError(
            spec,
            f"data.task={task}: not a local file (MCQ and NER files are read as "
            "`chimed-lit eval` reads them: CSV, JSON or JSONL on disk)",
        )
    if found != task:
        seen = f"it reads as {fmt} ({found})" if fmt else why
        raise DataError(
            spec,
            f"data.task={task}, but {seen}; set data.task_format to one of "
            f"{', '.join(n for n in TASK_FORMATS if FORMATS[n][0] == task)}, or data.task=auto",
        )
    return TaskFile(task, fmt)


def _data_error(spec: str, e: EvalDataError, line: int | None = None) -> DataError:
    """eval's error as the DataModules' error: the same file (as given), line and field."""
    line = e.line if line is None else line
    return DataError(spec, e.message, where=f"line {line}" if line else None, field=e.field)


# ----- examples -> prompt records -----------------------------------------------------------
def mcq_record(example: MCQExample) -> dict[str, Any]:
    """The zero-shot prompt eval asks for `example`, and its gold answer (letters, options)."""
    gold = {"answers": sorted(example.answers), "options": dict(example.options)}
    return {"messages": mcq_messages(example), "task": "mcq", "gold": gold}


def ner_records(examples: list[NERExample]) -> list[dict[str, Any]]:
    """Zero-shot NER prompts for one file's examples, each with its gold (surface, type) pairs."""
    display, code_to_name, reverse = ner_type_maps(examples)
    return [
        {
            "messages": ner_messages(ex, display, code_to_name),
            "task": "ner",
            "gold": {
                "entities": [list(p) for p in sorted({(e.surface, e.type) for e in ex.entities})],
                "type_names": reverse,
            },
        }
        for ex in examples
    ]


def read_task_file(
    spec: str, task_file: TaskFile, on_bad_record: str = "error"
) -> Iterator[dict[str, Any] | DataError]:
    """The prompt records of one MCQ/NER file in file order, or the `DataError` of each bad
    record (with `on_bad_record="error"`, only the first one: the caller raises it)."""
    path = Path(spec).expanduser()
    _, reader = FORMATS[task_file.fmt]
    try:
        examples = [(ex.source_line, ex) for ex in reader(path).examples]
        errors: list[tuple[int, DataError]] = []
    except EvalDataError as e:
        if on_bad_record == "error" or not e.line:  # no line: about the whole file
            raise _data_error(spec, e) from None
        examples, errors = _read_one_by_one(spec, path, task_file.fmt)
    lines = [line for line, _ in examples]
    if task_file.task == "mcq":
        built = [mcq_record(ex) for _, ex in examples]
    else:
        built = ner_records([ex for _, ex in examples])
    items = [*zip(lines, built, strict=True), *errors]
    for _, item in sorted(items, key=lambda x: x[0]):
        yield item


# ----- reading a file with bad records, one record at a time -------------------------------
def _raw_records(path: Path, kind: str) -> tuple[str, list[tuple[int, str]]]:
    """(head, [(line, text)]): each record's first line and its text as a one-record file of
    the same format (after `head`, the CSV header)."""
    text = read_text(path)
    if kind == "csv":
        rows = csv.reader(io.StringIO(text, newline=""))
        header = next(rows, None)
        if header is None:
            raise EvalDataError(path, 1, None, "empty CSV (no header row)")
        out, start = [], rows.line_num + 1
        for row in rows:
            if row:
                out.append((start, _csv_line(row)))
            start = rows.line_num + 1
        return _csv_line(header), out
    if text.lstrip().startswith("["):
        return "", [
            (line, json.dumps(obj, ensure_ascii=False)) for line, obj in iter_json_array(path, text)
        ]
    lines = text.split("\n")
    return "", [(n, line) for n, line in enumerate(lines, 1) if line.strip()]


def _csv_line(row: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(row)
    return buf.getvalue()


def _read_one_by_one(spec: str, path: Path, fmt: str) -> tuple[list, list]:
    """Every record of `path` read by eval's reader for `fmt` on its own: (line, example) for
    the good ones and (line, DataError) for the bad ones, lines as in the original file."""
    _, reader = FORMATS[fmt]
    kind = "csv" if fmt in _CSV_FORMATS else "json"
    try:
        head, records = _raw_records(path, kind)
    except EvalDataError as e:
        raise _data_error(spec, e) from None
    good, bad = [], []
    with tempfile.TemporaryDirectory(prefix="chimed-task-") as tmp:
        one = Path(tmp) / path.name  # the same name: CMMLU's subject is the file's stem
        for line, body in records:
            one.write_text(head + body + ("" if kind == "csv" else "\n"), encoding="utf-8")
            try:
                (ex,) = reader(one).examples
            except EvalDataError as e:
                bad.append((line, _data_error(spec, e, line)))
                continue
            good.append((line, replace(ex, source_line=line)))
    return good, bad


def check_task_knobs(task: Any, task_format: Any) -> None:
    problems = task_problems(task, task_format)
    if problems:
        raise ConfigError(problems)
