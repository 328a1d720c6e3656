"""Find uses of private or internal Lightning API in a source file, with `ast`.

Flagged: an import from a Lightning module with a `_`-prefixed part, of a `_`-prefixed name, or
from an internal package (loops, trainer connectors, hook dispatch); an internal loop attribute
(`fit_loop`, `epoch_loop`, `batch_progress` ...); a `_name` read on an object that is Lightning's
(`trainer._x`, `strategy._x`, `DDPStrategy._x`); and, in a class derived from a Lightning class,
a method override, `self._name` or `super()._name` whose name is one of that Lightning class's
private names.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import re
from functools import cache
from typing import Any

LIGHTNING_ROOTS = ("lightning", "pytorch_lightning", "lightning_fabric")
INTERNAL_PACKAGES = (".loops", ".trainer.connectors", ".trainer.call")
INTERNAL_ATTRS = {
    "fit_loop",
    "validate_loop",
    "test_loop",
    "predict_loop",
    "epoch_loop",
    "batch_progress",
    "epoch_progress",
    "optim_progress",
    "optim_step_progress",
    "manual_optimization",
}
# names our code gives Lightning objects: a `_name` read on one of them is Lightning's private
LIGHTNING_OBJECTS = {
    "trainer",
    "strategy",
    "accelerator",
    "precision_plugin",
    "lightning_module",
    "pl_module",
    "checkpoint_io",
    "cluster_environment",
    "fit_loop",
    "epoch_loop",
}


def _is_lightning(dotted: str) -> bool:
    return dotted.split(".", 1)[0] in LIGHTNING_ROOTS


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _dotted(node: ast.expr) -> list[str] | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def _resolve_class(dotted: str) -> type | None:
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj if isinstance(obj, type) else None
    return None


@cache
def lightning_private_names(dotted: str) -> frozenset[str]:
    """The private names the Lightning classes in `dotted`'s MRO define or assign on self."""
    cls = _resolve_class(dotted)
    if cls is None:
        return frozenset()
    names: set[str] = set()
    for base in cls.__mro__:
        if not _is_lightning(base.__module__):
            continue
        names.update(n for n in vars(base) if _private(n))
        with contextlib.suppress(OSError, TypeError):  # no source: a compiled class
            names.update(re.findall(r"self\.(_[A-Za-z]\w*)", inspect.getsource(base)))
    return frozenset(n for n in names if _private(n))


def _import_problems(node: ast.AST) -> list[str]:
    out = []
    if isinstance(node, ast.Import):
        mods = [a.name for a in node.names]
        names: list[str] = []
    elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
        mods, names = [node.module], [a.name for a in node.names]
    else:
        return out
    for mod in mods:
        if not _is_lightning(mod):
            continue
        if any(_private(p) for p in mod.split(".")) or any(
            f".{p}." in f"{mod}." for p in (i.strip(".") for i in INTERNAL_PACKAGES)
        ):
            out.append(f"imports the internal module {mod}")
        out += [f"imports the private {mod}.{n}" for n in names if _private(n)]
    return out


def problems(source: str, module: str) -> list[str]:
    """Every touch of a private or internal Lightning API in `source` (module `module`), as
    `line N: what` strings."""
    tree = ast.parse(source)
    imported: dict[str, str] = {}  # local name -> dotted origin
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                imported[a.asname or a.name.split(".")[0]] = (
                    a.name if a.asname else a.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            for a in node.names:
                imported[a.asname or a.name] = f"{node.module}.{a.name}"
    local_classes = {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}

    def origin(expr: ast.expr) -> str | None:
        parts = _dotted(expr)
        if not parts:
            return None
        if parts[0] in imported:
            return ".".join([imported[parts[0]], *parts[1:]])
        if parts[0] in local_classes:
            return ".".join([module, *parts])
        return None

    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        found += [(node.lineno, p) for p in _import_problems(node)]
        if not isinstance(node, ast.Attribute):
            continue
        if node.attr in INTERNAL_ATTRS:
            found.append((node.lineno, f"reads the internal loop attribute .{node.attr}"))
        elif _private(node.attr):
            receiver = _dotted(node.value)
            where = origin(node.value)
            if receiver and receiver[-1] in LIGHTNING_OBJECTS:
                found.append((node.lineno, f"reads {'.'.join(receiver)}.{node.attr}"))
            elif where and _is_lightning(where):
                found.append((node.lineno, f"reads {where}.{node.attr}"))
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        private: set[str] = set()
        for base in cls.bases:
            where = origin(base)
            if where:
                private |= lightning_private_names(where)
        if not private:
            continue
        for node in ast.walk(cls):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in private:
                found.append((node.lineno, f"{cls.name} overrides Lightning's {node.name}"))
            elif isinstance(node, ast.Attribute) and node.attr in private:
                on_self = isinstance(node.value, ast.Name) and node.value.id == "self"
                on_super = isinstance(node.value, ast.Call) and _dotted(node.value.func) == [
                    "super"
                ]
                if on_self or on_super:
                    found.append((node.lineno, f"{cls.name} uses Lightning's {node.attr}"))
    return [f"line {line}: {what}" for line, what in sorted(set(found))]
