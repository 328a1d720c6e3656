"""The package's import graph, read from the source with `ast` (nothing is imported)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# folders outside src/ that setuptools installs inside the package namespace (pyproject.toml)
MAPPED = {"plugins": "chimed_lit.plugins", "callbacks": "chimed_lit.callbacks"}

# Top to bottom; a module may import from its own layer or any layer below, never above.
LAYERS: list[tuple[str, ...]] = [
    ("cli", "__main__"),
    ("run",),
    ("stages",),
    ("callbacks",),
    ("modules", "data", "eval", "rewards"),
    ("plugins",),
    ("losses", "chat", "inference", "models", "planning"),
    ("io", "demo", "configs", "__init__"),
]


def source_files() -> dict[str, Path]:
    """Module name -> file, for the package and its mapped top-level folders."""
    out: dict[str, Path] = {}
    roots = [(ROOT / "src" / "chimed_lit", "chimed_lit")] + [
        (ROOT / folder, pkg) for folder, pkg in MAPPED.items()
    ]
    for base, pkg in roots:
        for f in sorted(base.rglob("*.py")):
            parts = list(f.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([pkg, *parts])] = f
    return out


def _resolve(module: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_pkg else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package modules it imports (at top level or inside functions)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_pkg, node)
                # `from pkg import mod` imports a module when mod is one
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                    for a in node.names
                ]
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t.startswith("chimed_lit") and t != name:
                    found.add(t)
        graph[name] = found
    return graph


def layer_of(module: str) -> int:
    parts = module.split(".")
    head = parts[1] if len(parts) > 1 else "__init__"
    for i, names in enumerate(LAYERS):
        if head in names:
            return i
    raise KeyError(f"{module}: its folder {head!r} is in no layer (tests/architecture)")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out
