"""Reading raw records from JSON, JSONL, CSV, Parquet and TXT files or a Hub dataset id.

Every record carries where it came from (file and line, row or item), so a bad one can be
named precisely. Nothing here knows about a stage's schema: see the DataModules (`data/`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chimed_lit.io.errors import DataError

FORMATS = ("json", "jsonl", "csv", "parquet", "txt")


@dataclass(frozen=True)
class Record:
    """One raw record and its location, e.g. `where="line 12"`."""

    data: dict[str, Any]
    source: str
    where: str
    error: DataError | None = None  # a record-level syntax error (skippable), data is then {}


def file_format(path: str, fmt: str | None = None) -> str:
    """The reader for `path`: `fmt` if given, else from the extension."""
    if fmt:
        if fmt not in FORMATS:
            raise DataError(
                path, f"unknown file format {fmt!r}; choose one of {', '.join(FORMATS)}"
            )
        return fmt
    ext = Path(path).suffix.lower().lstrip(".")
    if ext in FORMATS:
        return ext
    raise DataError(
        path,
        f"cannot tell the format from the extension {ext!r}; set data.file_format "
        f"to one of {', '.join(FORMATS)}",
    )


def is_hub_id(spec: str) -> bool:
    """`owner/name` that is not a local path: read through `datasets.load_dataset`."""
    return (
        not Path(spec).expanduser().exists()
        and spec.count("/") == 1
        and not spec.startswith((".", "/", "~"))
        and Path(spec).suffix == ""
    )


def _decode(raw: bytes, path: str, encoding: str) -> str:
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DataError(
            path,
            f"bytes {raw[e.start : e.end]!r} are not valid {encoding}; if the file "
            "uses another encoding set data.encoding (e.g. gb18030)",
            where=f"line {line}",
        ) from None
    return text.removeprefix("\ufeff")


def read_file(
    path: str, fmt: str | None = None, encoding: str = "utf-8", text_split: str = "line"
) -> Iterator[Record]:
    """Yield the records of one local file; raise `DataError` naming file and line on bad syntax."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(path, "file not found" if not p.exists() else "is not a file")
    kind = file_format(path, fmt)
    if kind == "parquet":
        yield from _read_parquet(p)
        return
    text = _decode(p.read_bytes(), path, encoding)
    if not text.strip():
        raise DataError(path, "file is empty (no records)")
    if kind == "json" and text.lstrip()[:1] == "[":
        yield from _read_json_array(text, path)
    elif kind == "json" and (one := _one_object(text)) is not None:
        yield Record(one, path, "line 1")  # a top-level object (pretty-printed or not)
    elif kind in ("json", "jsonl"):
        yield from _read_jsonl(text, path)
    elif kind == "csv":
        yield from _read_csv(text, path)
    else:
        yield from _read_txt(text, path, text_split)


def _lines(text: str) -> list[str]:
    """Lines as editors number them: split at \\n (and \\r\\n) only. `str.splitlines` also
    splits at U+0085, U+2028, form feeds ..., which JSON strings and Chinese text may hold."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def _one_object(text: str) -> dict[str, Any] | None:
    """The object a JSON file holds when its whole text is one JSON object, else None (JSON
    lines, or a syntax error that the line reader then names by line)."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def _read_jsonl(text: str, path: str) -> Iterator[Record]:
    for n, line in enumerate(_lines(text), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            yield _bad(path, n, f"malformed JSON ({e.msg} at column {e.colno})")
            continue
        if not isinstance(obj, dict):
            yield _bad(path, n, f"expected a JSON object, got {type(obj).__name__}")
            continue
        yield Record(obj, path, f"line {n}")


def _bad(path: str, line: int, message: str) -> Record:
    where = f"line {line}"
    return Record({}, path, where, DataError(path, message, where=where))


def _read_json_array(text: str, path: str) -> Iterator[Record]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(
            path, f"malformed JSON ({e.msg} at column {e.colno})", where=f"line {e.lineno}"
        ) from None
    for i, obj in enumerate(items):
        if isinstance(obj, list):  # e.g. a dialogue stored as a bare list of utterances
            obj = {"utterances": obj}
        if not isinstance(obj, dict):
            raise DataError(
                path, f"expected an object, got {type(obj).__name__}", where=f"item {i}"
            )
        yield Record(obj, path, f"item {i}")


def _read_csv(text: str, path: str) -> Iterator[Record]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        raise DataError(path, "CSV has no header row")
    try:
        for row in reader:
            if None in row:
                yield _bad(
                    path,
                    reader.line_num,
                    f"row has {len(reader.fieldnames) + len(row[None])} fields but "
                    f"the header has {len(reader.fieldnames)}",
                )
                continue
            yield Record(dict(row), path, f"line {reader.line_num}")
    except csv.Error as e:
        raise DataError(path, f"malformed CSV ({e})", where=f"line {reader.line_num}") from None


def _read_txt(text: str, path: str, text_split: str) -> Iterator[Record]:
    if text_split == "file":
        yield Record({"text": text.strip()}, path, "whole file")
    elif text_split == "paragraph":
        line = 1
        for block in text.split("\n\n"):
            if block.strip():
                yield Record({"text": block.strip()}, path, f"line {line}")
            line += block.count("\n") + 2
    elif text_split == "line":
        for n, line in enumerate(_lines(text), 1):
            if line.strip():
                yield Record({"text": line.strip()}, path, f"line {n}")
    else:
        raise DataError(
            path, f"unknown data.text_split {text_split!r}; use line, paragraph or file"
        )


def _read_parquet(p: Path) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(p)
    except Exception as e:  # noqa: BLE001 (pyarrow raises several types for a bad file)
        raise DataError(str(p), f"cannot read Parquet ({e})") from None
    for i, row in enumerate(table.to_pylist()):
        yield Record(row, str(p), f"row {i}")


def read_hub(dataset_id: str, subset: str | None, split: str) -> Iterator[Record]:
    """Records of a Hub dataset (cached by `datasets`; needs the network the first time)."""
    import datasets

    try:
        ds = datasets.load_dataset(dataset_id, subset, split=split)
    except Exception as e:  # noqa: BLE001 (network, auth, format: each becomes one DataError)
        raise DataError(dataset_id, f"cannot load Hub dataset ({type(e).__name__}: {e})") from None
    for i, row in enumerate(ds):
        yield Record(dict(row), f"{dataset_id}:{split}", f"row {i}")


def read_source(spec: str, **kwargs: Any) -> Iterator[Record]:
    """A local file, or `owner/name` for a Hub dataset (`hub_subset`, `hub_split` in kwargs)."""
    subset, split = kwargs.pop("hub_subset", None), kwargs.pop("hub_split", "train")
    if is_hub_id(spec):
        return read_hub(spec, subset, split)
    return read_file(spec, **kwargs)
