"""Low-level record iteration that keeps each record's line number for error messages.

JSON arrays are decoded element by element with `raw_decode`, so an error (or a later check)
can name the line where the element starts, not just its index.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import EvalDataError


def read_text(path: Path) -> str:
    """Read UTF-8 (with or without BOM); a decoding failure names the file."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise EvalDataError(path, None, None, f"not UTF-8 text ({err})") from err
    except OSError as err:
        raise EvalDataError(path, None, None, f"cannot read: {err}") from err


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def iter_json_array(path: Path, text: str | None = None) -> Iterator[tuple[int, Any]]:
    """Yield (line, element) for a top-level JSON array."""
    text = read_text(path) if text is None else text
    decoder = json.JSONDecoder()
    n = len(text)
    i = _skip_ws(text, 0)
    if i >= n or text[i] != "[":
        raise EvalDataError(path, _line_of(text, i), None, "expected a JSON array ('[')")
    i = _skip_ws(text, i + 1)
    line, last = 1, 0
    if i < n and text[i] == "]":
        return
    while True:
        line += text.count("\n", last, i)
        last = i
        try:
            obj, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError as err:
            raise EvalDataError(path, err.lineno, None, f"invalid JSON: {err.msg}") from err
        yield line, obj
        i = _skip_ws(text, end)
        if i < n and text[i] == ",":
            i = _skip_ws(text, i + 1)
            continue
        if i < n and text[i] == "]":
            return
        raise EvalDataError(path, _line_of(text, i), None, "expected ',' or ']' in JSON array")


def iter_jsonl(path: Path, text: str | None = None) -> Iterator[tuple[int, Any]]:
    """Yield (line, object) for each non-blank line of a JSON-lines file."""
    text = read_text(path) if text is None else text
    # split on "\n" only: str.splitlines would also break at U+2028 inside JSON strings
    for lineno, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            yield lineno, json.loads(raw)
        except json.JSONDecodeError as err:
            raise EvalDataError(path, lineno, None, f"invalid JSON: {err.msg}") from err


def iter_json_records(path: Path) -> Iterator[tuple[int, Any]]:
    """A JSON array or JSON lines, decided by the first non-blank character."""
    text = read_text(path)
    start = _skip_ws(text, 0)
    if start < len(text) and text[start] == "[":
        yield from iter_json_array(path, text)
    else:
        yield from iter_jsonl(path, text)


def iter_csv_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (first physical line of the record, row dict) for a CSV with a header row."""
    text = read_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames is None:
        raise EvalDataError(path, 1, None, "empty CSV (no header row)")
    prev = reader.line_num
    for row in reader:
        start = prev + 1
        prev = reader.line_num
        if None in row:
            raise EvalDataError(path, start, None, "row has more cells than the header")
        yield start, {k: (v if v is not None else "") for k, v in row.items()}


def csv_header(path: Path) -> list[str]:
    text = read_text(path)
    first = next(csv.reader(io.StringIO(text, newline="")), [])
    return [c.strip() for c in first]


def _skip_ws(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in " \t\r\n":
        i += 1
    return i


def require(
    record: Any, key: str, kind: type | tuple[type, ...], path: Path, line: int, prefix: str = ""
) -> Any:
    """Fetch `record[key]`, checking its type; errors name the dotted field."""
    name = f"{prefix}{key}"
    if not isinstance(record, dict):
        raise EvalDataError(path, line, prefix.rstrip(".") or None, "expected a JSON object")
    if key not in record:
        raise EvalDataError(path, line, name, "missing")
    value = record[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        want = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise EvalDataError(path, line, name, f"expected {want}, got {type(value).__name__}")
    return value
