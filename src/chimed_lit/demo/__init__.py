"""The demo corpus shipped with the package (team-written; see scripts/make_demo_corpus.py)."""

from __future__ import annotations

from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent


def demo_path(name: str) -> str:
    """Absolute path of a shipped demo file, e.g. `demo_path("sft.jsonl")`."""
    path = DEMO_DIR / name
    if not path.is_file():
        known = ", ".join(sorted(p.name for p in DEMO_DIR.glob("*.jsonl")))
        raise FileNotFoundError(f"no demo file {name!r}; shipped: {known}")
    return str(path)
