"""Attitude-scale instruments: options, items, subscales and scoring direction.

An instrument lists its answer options from STRONGEST AGREEMENT to strongest disagreement.
With K options, agreeing fully is worth K and disagreeing fully 1. Each item says whether
agreeing means more bias ("forward") or less ("reverse"); scoring turns every answer into the
"higher = more bias" direction. Instruments come from YAML (any scale, item texts included)
or from the built-in CAMI/MICA keys plus a user's items file (see `keys_builtin`): the item
texts of those two scales belong to their authors and are never shipped here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import EvalDataError
from .sources import read_text


@dataclass(frozen=True)
class ScaleItem:
    number: int  # 1-based position in the instrument's order
    text: str
    subscale: str
    reverse: bool  # True: agreeing means LESS bias (a reverse-keyed item)


@dataclass(frozen=True)
class Instrument:
    name: str
    options: tuple[str, ...]  # strongest agreement first
    items: tuple[ScaleItem, ...]
    # "user" (from YAML: the user vouches for it), "published" (built-in key as its authors
    # publish it, see `keys_builtin`)
    key_status: str = "user"
    key_note: str = ""
    # For subscales whose construct is the OPPOSITE of bias (e.g. CAMI benevolence): False.
    construct_is_bias: Mapping[str, bool] = field(default_factory=dict)

    @property
    def n_options(self) -> int:
        return len(self.options)

    @property
    def subscales(self) -> list[str]:
        return list(dict.fromkeys(item.subscale for item in self.items))


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that records each mapping's line as `__line__` for error messages."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

_DIRECTIONS = {"forward": False, "reverse": True}


def load_instrument(path: str | Path) -> Instrument:
    """Read an instrument YAML: `name`, `options` (strongest agreement first), `items` each
    with `text`, `subscale` and `direction` (forward | reverse)."""
    path = Path(path)
    try:
        data = yaml.load(read_text(path), Loader=_LineLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise EvalDataError(
            path, mark.line + 1 if mark else None, None, f"bad YAML: {err}"
        ) from err
    if not isinstance(data, dict):
        raise EvalDataError(path, 1, None, "expected a mapping at the top level")
    top = data.get("__line__", 1)
    name = data.get("name") or path.stem
    options = data.get("options")
    if not (
        isinstance(options, list) and len(options) >= 2 and all(isinstance(o, str) for o in options)
    ):
        raise EvalDataError(path, top, "options", "need a list of at least two strings")
    if len(set(options)) != len(options):
        raise EvalDataError(path, top, "options", "options must be distinct")
    raw_items = data.get("items")
    if not (isinstance(raw_items, list) and raw_items):
        raise EvalDataError(path, top, "items", "need a non-empty list")
    items = []
    for k, raw in enumerate(raw_items):
        line = raw.get("__line__", top) if isinstance(raw, dict) else top
        if not isinstance(raw, dict):
            raise EvalDataError(path, line, f"items[{k}]", "expected a mapping")
        for key in ("text", "subscale", "direction"):
            if not isinstance(raw.get(key), str) or not raw[key].strip():
                raise EvalDataError(path, line, f"items[{k}].{key}", "missing or not a string")
        direction = raw["direction"].strip().lower()
        if direction not in _DIRECTIONS:
            raise EvalDataError(
                path, line, f"items[{k}].direction", f"{direction!r} is not forward or reverse"
            )
        items.append(
            ScaleItem(k + 1, raw["text"].strip(), raw["subscale"].strip(), _DIRECTIONS[direction])
        )
    polarity = data.get("construct_is_bias") or {}
    if not isinstance(polarity, dict):
        raise EvalDataError(path, top, "construct_is_bias", "expected a mapping subscale -> bool")
    polarity = {k: bool(v) for k, v in polarity.items() if k != "__line__"}
    return Instrument(str(name), tuple(options), tuple(items), "user", "", polarity)


def demo_instrument_path() -> Path:
    """The packaged demo instrument (six made-up items, two subscales)."""
    return Path(__file__).resolve().parent / "instruments" / "demo_scale.yaml"


def read_items_file(path: str | Path, expected: int | None = None) -> list[str]:
    """Item texts, one per non-blank line or as a JSON list (of strings or {"text": ...});
    the count is checked against `expected` so a missing line cannot shift every key."""
    path = Path(path)
    text = read_text(path)
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise EvalDataError(path, err.lineno, None, f"invalid JSON: {err.msg}") from err
        items = []
        for k, entry in enumerate(data):
            value = entry.get("text") if isinstance(entry, dict) else entry
            if not isinstance(value, str) or not value.strip():
                raise EvalDataError(path, None, f"[{k}]", "item is not a non-empty string")
            items.append(value.strip())
    else:
        items = [line.strip() for line in text.splitlines() if line.strip()]
    if expected is not None and len(items) != expected:
        raise EvalDataError(
            path,
            None,
            "items",
            f"expected {expected} items in the instrument's order, got {len(items)}",
        )
    return items


def with_texts(
    name: str,
    options: Sequence[str],
    key: Sequence[tuple[str, bool]],
    texts: Sequence[str],
    key_status: str,
    key_note: str,
    construct_is_bias: Mapping[str, bool],
) -> Instrument:
    """Join a scoring key [(subscale, reverse), ...] with item texts in the same order."""
    if len(texts) != len(key):
        raise ValueError(f"{name}: {len(key)} keyed items but {len(texts)} texts")
    items = tuple(
        ScaleItem(i + 1, text, subscale, reverse)
        for i, (text, (subscale, reverse)) in enumerate(zip(texts, key, strict=True))
    )
    return Instrument(name, tuple(options), items, key_status, key_note, dict(construct_is_bias))
