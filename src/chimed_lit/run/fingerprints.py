"""What identifies a stage's result: its fingerprint, and the record a resume is checked against.

The fingerprint (`<stage>/stage.json`, `summary.json`) hashes the stage's resolved config (less
logging, paths and run control), the fingerprints of the stages it starts from, and the bytes of
its input files. The run record holds the same things readably (the config flattened to dotted
keys, each input's digest, each upstream stage's fingerprint): every checkpoint carries the
record of the run that wrote it, so `resume=true` can name what changed (`run/resume_guard.py`).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from chimed_lit.demo import demo_path

# top-level keys that do not decide a stage's result: run control, logging, callbacks, where
# files go (`resume_allow_config_change`: the resume guard's override)
VOLATILE = (
    "resume",
    "resume_allow_config_change",
    "logger",
    "callbacks",
    "paths",
    "stage_overrides",
    "checkpoint",
    "hydra",
)


def file_digest(path: str) -> str:
    """sha256 of a file's bytes (`hub:<id>` for a Hub id). The fingerprint and the run record
    of a stage both ask for every input: a file is read once while its size and mtime hold."""
    p = Path(path).expanduser()
    if not p.is_file():  # a Hub id: its name stands for it
        return f"hub:{path}"
    st = p.stat()
    return _digest(str(p.resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=1024)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def result_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config less what does not decide the result (`VOLATILE`, `stage.spec`)."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    for key in VOLATILE:
        resolved.pop(key, None)
    (resolved.get("stage") or {}).pop("spec", None)
    return resolved


def fingerprint(cfg: DictConfig, upstream: list[str], data_files: list[str]) -> str:
    """Hash of what determines a stage's result: its resolved config (less logging and paths),
    the fingerprints of the stages it starts from, and the bytes of its input files. Like the
    code of its modules, the stage's class (`stage.spec`) is not part of it."""
    payload = json.dumps(
        {
            "cfg": result_config(cfg),
            "upstream": upstream,
            "files": [file_digest(f) for f in data_files],
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def data_files(cfg: DictConfig) -> list[str]:
    """The stage's input files (demo files when none are configured)."""
    files = list(cfg.data.get("train_files") or []) + list(cfg.data.get("val_files") or [])
    if not cfg.data.get("train_files"):
        files += [demo_path(n) for n in get_class(cfg.data._target_).demo_files]
    return files


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`; lists and scalars are leaves (an empty dict too)."""
    if not isinstance(tree, dict) or (not tree and prefix):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def upstream_fingerprints(upstream: dict[str, str]) -> dict[str, str | None]:
    """Stage -> the fingerprint in `stage.json` beside its `hf/` dir (None: not a stage of a
    run, e.g. `model.pretrained=DIR`, named by the config instead)."""
    out: dict[str, str | None] = {}
    for name, hf in sorted(upstream.items()):
        done = Path(hf).parent / "stage.json"
        try:
            out[name] = json.loads(done.read_text()).get("fingerprint")
        except (OSError, ValueError):
            out[name] = None
    return out


def run_record(cfg: DictConfig, upstream: dict[str, str] | None = None) -> dict[str, Any]:
    """What a checkpoint of this run is stamped with: the result config as dotted keys, each
    input file's digest, each upstream stage's fingerprint. Plain JSON types only."""
    record = {
        "config": flatten(result_config(cfg)),
        "inputs": {f: file_digest(f) for f in data_files(cfg)},
        "upstream": upstream_fingerprints(upstream or {}),
    }
    return json.loads(json.dumps(record, sort_keys=True, default=str))
