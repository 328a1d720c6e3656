"""NER readers: CMeEE-V2 (inclusive `end_idx`) and CCKS-2019 / Yidu-S4K (exclusive `end`).

Both become `NERExample`s with half-open offsets. Each entity is checked against the text
(`text[start:end] == surface`): an off-by-one in the convention would silently shift every
gold span, so a mismatch raises by default (`on_mismatch="skip"` drops and counts it).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Literal

from .errors import EvalDataError
from .records import Entity, NERExample, ReadResult
from .sources import iter_json_records, require

OnMismatch = Literal["raise", "skip"]


def _checked_entity(
    text: str,
    start: int,
    end: int,
    etype: str,
    surface: str,
    where: tuple[Path, int, str],
    on_mismatch: OnMismatch,
    skipped: Counter[str],
) -> Entity | None:
    path, line, field = where
    if not (0 <= start < end <= len(text)) or text[start:end] != surface:
        got = text[start:end] if 0 <= start <= end <= len(text) else "<out of range>"
        if on_mismatch == "skip":
            skipped["offset_mismatch"] += 1
            return None
        raise EvalDataError(
            path, line, field, f"span [{start}, {end}) is {got!r}, entity says {surface!r}"
        )
    return Entity(start, end, etype, surface)


def read_cmeee(path: str | Path, on_mismatch: OnMismatch = "raise") -> ReadResult[NERExample]:
    """CMeEE-V2: `{"text", "entities": [{"start_idx", "end_idx", "type", "entity"}]}` with
    `end_idx` INCLUSIVE."""
    path = Path(path)
    result: ReadResult[NERExample] = ReadResult([], path, "cmeee", "ner")
    for line, rec in iter_json_records(path):
        text = require(rec, "text", str, path, line)
        ents = require(rec, "entities", list, path, line)
        out: list[Entity] = []
        for k, ent in enumerate(ents):
            pre = f"entities[{k}]."
            start = require(ent, "start_idx", int, path, line, pre)
            end_incl = require(ent, "end_idx", int, path, line, pre)
            etype = require(ent, "type", str, path, line, pre)
            surface = require(ent, "entity", str, path, line, pre)
            checked = _checked_entity(
                text,
                start,
                end_incl + 1,
                etype,
                surface,
                (path, line, pre + "end_idx"),
                on_mismatch,
                result.skipped,
            )
            if checked is not None:
                out.append(checked)
        result.examples.append(NERExample(text, tuple(out), line))
    return result


def read_ccks2019(path: str | Path, on_mismatch: OnMismatch = "raise") -> ReadResult[NERExample]:
    """CCKS-2019: `{"text", "entity_list": [{"entity_index": {"begin", "end" (exclusive)},
    "entity_type", "entity"}]}`."""
    path = Path(path)
    result: ReadResult[NERExample] = ReadResult([], path, "ccks2019", "ner")
    for line, rec in iter_json_records(path):
        text = require(rec, "text", str, path, line)
        ents = require(rec, "entity_list", list, path, line)
        out: list[Entity] = []
        for k, ent in enumerate(ents):
            pre = f"entity_list[{k}]."
            index = require(ent, "entity_index", dict, path, line, pre)
            start = require(index, "begin", int, path, line, pre + "entity_index.")
            end = require(index, "end", int, path, line, pre + "entity_index.")
            etype = require(ent, "entity_type", str, path, line, pre)
            surface = require(ent, "entity", str, path, line, pre)
            checked = _checked_entity(
                text,
                start,
                end,
                etype,
                surface,
                (path, line, pre + "entity_index.end"),
                on_mismatch,
                result.skipped,
            )
            if checked is not None:
                out.append(checked)
        result.examples.append(NERExample(text, tuple(out), line))
    return result
