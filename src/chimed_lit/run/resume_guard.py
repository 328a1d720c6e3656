"""`resume=true` continues a checkpoint only with the config and inputs that wrote it.

Every checkpoint carries the run record of the run that wrote it (`run/fingerprints.run_record`,
stored under the checkpoint's `chimed_lit` stamp by `ResumeRecord`). Before resuming, the record
is compared with this run's: any difference outside `MAY_CHANGE` stops the run with a
`ConfigError` (exit 2) naming every changed key, `old -> new`. `resume_allow_config_change=true`
resumes anyway; the changes are then logged and listed in `summary.json` (`resume.changes`).
Keys that never enter the record (`fingerprints.VOLATILE`: logging, callbacks, paths, checkpoint
settings) may change freely.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch

from chimed_lit.io.atomic import write_text
from chimed_lit.io.checkpoints import STAMP
from chimed_lit.io.errors import ConfigError

log = logging.getLogger("chimed_lit")

RECORD = "run"  # key under the checkpoint's STAMP: the run record as JSON text
SIDECAR = "run_record.json"  # in checkpoints/: for folder (sharded) checkpoints

# keys that may differ between a checkpoint and the run resuming it: where it runs and how fast
# (devices, nodes, accelerator, precision and its plugins, data loader workers, caches), how
# far it goes (max_steps / max_epochs: extending a run is what resume is for; give the schedule
# a fixed horizon, `scheduler.total_steps`, to keep its shape), what it prints, and the
# non-finite policy (resume a stopped run with on_nonfinite=skip). A prefix covers its subkeys.
MAY_CHANGE = (
    "trainer.accelerator",
    "trainer.devices",
    "trainer.num_nodes",
    "trainer.precision",
    "trainer.plugins",
    "trainer.max_steps",
    "trainer.max_epochs",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.log_every_n_steps",
    "data.num_workers",
    "data.cache_dir",
    "model.cache_dir",
    "on_nonfinite",
)


def _may_change(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in MAY_CHANGE)


def _checkpoint_kind(config: dict[str, Any]) -> str:
    """How the configured strategy writes checkpoints: one file, or a DeepSpeed / FSDP2 folder."""
    target = str(config.get("strategy._target_", "")).lower()
    if "deepspeed" in target:
        return "deepspeed folder"
    if "fsdp" in target and config.get("strategy.save_distributed_checkpoint", True):
        return "fsdp2 folder"
    return "file"


def _show(value: Any) -> str:
    return "<absent>" if value is _ABSENT else json.dumps(value, ensure_ascii=False, default=str)


_ABSENT = object()


def changes(old: dict[str, Any], new: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(refused, allowed): every difference between two run records as `key: old -> new`.
    Strategy keys may change while the checkpoint format stays (file, DeepSpeed or FSDP2
    folders); inputs by path, upstream stages by name."""
    refused: list[str] = []
    allowed: list[str] = []
    oc, nc = old.get("config") or {}, new.get("config") or {}
    same_format = _checkpoint_kind(oc) == _checkpoint_kind(nc)
    for key in sorted(set(oc) | set(nc)):
        a, b = oc.get(key, _ABSENT), nc.get(key, _ABSENT)
        if a == b:
            continue
        line = f"{key}: {_show(a)} -> {_show(b)}"
        ok = _may_change(key) or (key.startswith("strategy.") and same_format)
        (allowed if ok else refused).append(line)
    for part, what in (("inputs", "input file"), ("upstream", "upstream stage")):
        o, n = old.get(part) or {}, new.get(part) or {}
        for key in sorted(set(o) | set(n)):
            a, b = o.get(key, _ABSENT), n.get(key, _ABSENT)
            if a != b:
                label = "fingerprint" if part == "upstream" else "sha256"
                refused.append(f"{what} {key} ({label}): {_show(a)} -> {_show(b)}")
    return refused, allowed


def checkpoint_record(path: str | Path) -> dict[str, Any] | None:
    """The run record a checkpoint was written with; None for one written before records existed.
    A folder checkpoint (DeepSpeed, FSDP2) has it in `checkpoints/run_record.json`."""
    path = Path(path)
    if path.is_dir():
        sidecar = path.parent / SIDECAR
        return json.loads(sidecar.read_text()) if sidecar.is_file() else None
    ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    text = (ckpt.get(STAMP) or {}).get(RECORD) if isinstance(ckpt, dict) else None
    return json.loads(text) if text else None


def check_resume(
    ckpt: str, record: dict[str, Any], stage: str, allow: bool = False
) -> dict[str, Any]:
    """Refuse (exit 2) to resume `ckpt` with a run whose record differs outside `MAY_CHANGE`,
    unless `allow` (`resume_allow_config_change=true`). Returns what `summary.json` records
    under `resume`."""
    old = checkpoint_record(ckpt)
    if old is None:
        log.warning(
            "%s: %s has no run record (written by an older version): not checked", stage, ckpt
        )
        return {"checkpoint": ckpt, "checked": False}
    refused, allowed = changes(old, record)
    if refused and not allow:
        raise ConfigError(
            f"{stage}: resume=true would continue {ckpt} with a different config or inputs "
            f"({len(refused)} changed):\n"
            + "".join(f"      {line}\n" for line in refused)
            + "    run with the checkpoint's settings, start afresh (another paths.output_dir, "
            "or without resume=true), or pass resume_allow_config_change=true to continue "
            "these weights under the new settings"
        )
    for line in refused:
        log.warning(
            "%s: resuming with a changed setting (resume_allow_config_change): %s", stage, line
        )
    for line in allowed:
        log.info("%s: resuming with %s", stage, line)
    return {
        "checkpoint": ckpt,
        "checked": True,
        "allow_config_change": bool(allow),
        "changes": refused,
        "allowed_changes": allowed,
    }


class ResumeRecord(L.Callback):
    """Stamps every checkpoint with the run record (`checkpoint["chimed_lit"]["run"]`), and keeps
    `checkpoints/run_record.json` for folder checkpoints, whose stamp the engine keeps."""

    def __init__(self, record: dict[str, Any], dirpath: str | Path | None = None):
        self.text = json.dumps(record, sort_keys=True)
        self.dirpath = Path(dirpath) if dirpath is not None else None

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[STAMP] = {**(checkpoint.get(STAMP) or {}), RECORD: self.text}
        if self.dirpath is not None and trainer.is_global_zero:
            write_text(self.dirpath / SIDECAR, self.text)
