"""The values one override sets, and whether each fits the type of the key's default.

Hydra's sweep syntax sets many values: `choice(...)`, `range(...)`, comma lists, `shuffle(...)`,
`tag(...)` and group `glob(...)` can be listed and are checked value by value; `interval(...)`
cannot (a sweeper such as Optuna samples it), so it goes to the sweeper unchecked.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

MAX_CHECKED = 1000  # values of one sweep checked (a `range` may be long)


def override_values(ov: Any, options: list[str] | None = None) -> list[Any] | None:
    """Each value a parsed Hydra override sets, or None when they cannot be listed here;
    `options` are the group's options, for `glob(...)`."""
    from hydra.core.override_parser.types import Glob

    if not ov.is_sweep_override():
        return [ov.value()]
    value = ov.value()
    if isinstance(value, Glob):
        return None if options is None else value.filter(options)
    if ov.is_discrete_sweep():
        return list(islice(ov.sweep_iterator(), MAX_CHECKED))
    return None  # interval(...): sampled by the sweeper


def _fits(kind: type, new: Any) -> bool:
    if kind is bool:
        return isinstance(new, bool)
    if kind is int:
        return isinstance(new, int) and not isinstance(new, bool)
    if kind is float:
        return isinstance(new, (int, float)) and not isinstance(new, bool)
    return isinstance(new, kind)


KINDS = (
    (bool, "true or false"),
    (int, "an integer"),
    (float, "a number"),
    (list, "a list like [a,b]"),
    (dict, "a mapping like {k: v}"),
)


def type_problem(shown: str, old: Any, new: Any) -> str | None:
    """`shown=new: expected ...` when `new` cannot replace the default `old`, else None
    (strings, nulls and interpolations take anything)."""
    if old is None or new is None or isinstance(old, str):
        return None
    if isinstance(new, str) and new.startswith("${"):
        return None
    for kind, words in KINDS:
        if isinstance(old, kind):
            if _fits(kind, new):
                return None
            return f"{shown}={new!r}: expected {words} (the default is {old!r})"
    return None
