"""What killed runs leave behind, removed when the next command starts on the same output dir.

- `.<name>.tmp-<suffix>/` folders (`_PARTIAL_DIR`) of an export (or any `atomic.write_dir`)
  killed half-way; a folder swap killed between its two renames (`<name>/` gone,
  `.<name>.old/` still there) gets its old version back, which its `summary.json` and
  `config.yaml` still describe;
- `.<name>.ckpt.<suffix>.tmp` files (`_PARTIAL_CKPT`) of a checkpoint save killed half-way
  (`AtomicCheckpointIO`), as large as a checkpoint;
- `.<name>.<8 random characters>` files (`_PARTIAL_FILE`) of an atomic write killed half-way
  (`atomic.write_bytes`);
- `tmp*` files in the tokenized-datasets cache (`<cache_dir>/datasets/`) of a tokenization
  killed half-way. The cache may be shared by runs in flight, so only files untouched for
  `CACHE_IDLE_S` go.

`remove_output_leftovers(path)` serves commands whose one output file may be anywhere
(`chimed-lit generate`): beside that file, only the temporaries of its own atomic write
(`.<name>.<8 random characters>`) go, and only once untouched for `CACHE_IDLE_S` (the folder may
be shared, and another process may be writing the same file).

Only the process of global rank 0 cleans: the other ranks of a run start while it works.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("chimed_lit")

CACHE_IDLE_S = 30 * 60
_PARTIAL_DIR = re.compile(r"^\.(?P<name>.+)\.tmp-[A-Za-z0-9_]+$")
_OLD_DIR = re.compile(r"^\.(?P<name>.+)\.old$")
_PARTIAL_CKPT = re.compile(r"^\..+\.ckpt\..+\.tmp$")
_PARTIAL_FILE = re.compile(r"^\..+\.(json|jsonl|yaml|yml|md|csv|png|txt|html)\.[a-z0-9_]{8}$")


def is_rank_zero() -> bool:
    """True unless the environment names another global rank (torchrun, SLURM, Lightning's
    launcher for the ranks it spawns)."""
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        value = os.environ.get(var)
        if value not in (None, ""):
            return value == "0"
    return True


def remove_leftovers(output_dir: str | os.PathLike, cache_dirs: Iterable[str] = ()) -> list[Path]:
    """Remove what killed runs left under `output_dir` and in the datasets caches; returns what
    went. A no-op on ranks other than 0 and where the folders do not exist."""
    if not is_rank_zero():
        return []
    gone: list[Path] = []
    root = Path(output_dir).expanduser()
    if root.is_dir():
        for path in sorted(root.rglob(".*"), key=lambda p: len(p.parts)):
            if not path.exists() and not path.is_symlink():
                continue  # inside a folder already removed
            gone += _clean(path)
    now = time.time()
    for cache in dict.fromkeys(Path(c).expanduser() / "datasets" for c in cache_dirs if c):
        for tmp in cache.glob("tmp*") if cache.is_dir() else []:
            try:
                idle = now - tmp.stat().st_mtime
            except FileNotFoundError:
                continue
            if tmp.is_file() and idle > CACHE_IDLE_S:
                _remove(tmp, "a tokenization that was interrupted")
                gone.append(tmp)
    return gone


def remove_output_leftovers(path: str | os.PathLike) -> list[Path]:
    """Remove what killed writes of the file `path` (`atomic.write_bytes`) left beside it, once
    untouched for `CACHE_IDLE_S`; returns what went. A no-op on ranks other than 0."""
    if not is_rank_zero():
        return []
    target = Path(path).expanduser()
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.[a-z0-9_]{{8}}$")
    gone: list[Path] = []
    now = time.time()
    for tmp in target.parent.iterdir() if target.parent.is_dir() else []:
        if not pattern.match(tmp.name) or tmp.is_symlink() or not tmp.is_file():
            continue
        try:
            idle = now - tmp.stat().st_mtime
        except FileNotFoundError:
            continue
        if idle > CACHE_IDLE_S:
            _remove(tmp, f"a write of {target.name} that was interrupted")
            gone.append(tmp)
    return gone


def _clean(path: Path) -> list[Path]:
    name = path.name
    if path.is_dir() and not path.is_symlink():
        m = _OLD_DIR.match(name)
        if m:
            target = path.with_name(m["name"])
            if not target.exists():
                log.warning("restoring %s from %s (a swap was interrupted)", target, path)
                os.replace(path, target)
                return []
            _remove(path, "a folder swap that was interrupted")
            return [path]
        if _PARTIAL_DIR.match(name):
            _remove(path, "an export that was interrupted")
            return [path]
        return []
    if path.is_file() and (_PARTIAL_CKPT.match(name) or _PARTIAL_FILE.match(name)):
        kind = "checkpoint save" if _PARTIAL_CKPT.match(name) else "write"
        _remove(path, f"a {kind} that was interrupted")
        return [path]
    return []


def _remove(path: Path, why: str) -> None:
    log.warning("removing %s, left by %s", path, why)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
