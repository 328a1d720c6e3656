"""Checkpoints a run can trust: written atomically, stamped with their stage, checked on resume.

A node that dies while writing must never leave a checkpoint that `resume=true` then loads.
Lightning's own local save goes through an fsspec transaction whose temporary file lives in the
system temp dir, so the final move may be a copy across filesystems (not atomic).
`AtomicCheckpointIO` writes next to the target and renames, and stamps each checkpoint with the
stage that wrote it. `find_resume_checkpoint` takes the newest checkpoint that passes
`checkpoint_problem`, naming every one it skips and why.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from chimed_lit.io.errors import CheckpointError, ConfigError

log = logging.getLogger("chimed_lit")

STAMP = "chimed_lit"  # checkpoint key: {"stage": name, "run": the run record (run/resume_guard.py)}
LIGHTNING_KEYS = ("state_dict", "global_step", "loops")
VERIFY = ("full", "quick")


class AtomicCheckpointIO(TorchCheckpointIO):
    """`torch.save` to a temporary file beside the target, fsync, then rename over it."""

    def __init__(self, stage: str | None = None):
        self.stage = stage

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if self.stage is not None:
            checkpoint = {
                **checkpoint,
                STAMP: {**(checkpoint.get(STAMP) or {}), "stage": self.stage},
            }
        if "://" in str(path):  # remote storage: Lightning's fsspec path
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(tmp, 0o666 & ~mask)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load_checkpoint(
        self, path: Any, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        checkpoint = super().load_checkpoint(path, map_location=map_location, weights_only=True)
        saved = (checkpoint.get(STAMP) or {}).get("stage")
        if self.stage is not None and saved not in (None, self.stage):
            raise CheckpointError(
                f"checkpoint {path} was written by the {saved!r} stage, not {self.stage!r}"
            )
        return checkpoint


def checkpoint_plugins(strategy: Any, stage: str, given: Any = ()) -> list[Any]:
    """`Trainer(plugins=...)`: the user's (`trainer.plugins`) plus `AtomicCheckpointIO`, unless
    a checkpoint IO is already chosen, or the strategy is sharded (DeepSpeed and FSDP2 write
    folders through their own engines)."""
    from lightning.fabric.plugins import CheckpointIO
    from lightning.pytorch.strategies import DeepSpeedStrategy, ModelParallelStrategy

    given = list(given or [])
    if (
        isinstance(strategy, DeepSpeedStrategy | ModelParallelStrategy)
        or getattr(strategy, "_checkpoint_io", None) is not None
        or any(isinstance(p, CheckpointIO) for p in given)
    ):
        return given
    return [*given, AtomicCheckpointIO(stage)]


def checkpoint_problem(path: Path, stage: str | None = None, verify: str = "full") -> str | None:
    """Why `path` must not be resumed from, or None when it is usable.

    `quick` reads the archive's directory and pickled structure (memory-mapped, no tensor data):
    it catches truncated and foreign files. `full` also checks every stored CRC, which reads the
    whole file once and catches bytes damaged in the middle."""
    if path.is_dir():  # a sharded (DeepSpeed / FSDP2) checkpoint: its engine validates shards
        return None if any(path.iterdir()) else "empty checkpoint folder"
    if path.stat().st_size == 0:
        return "empty file"
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # noqa: BLE001 (torch raises RuntimeError, UnpicklingError, EOFError ...)
        return f"unreadable ({str(e).splitlines()[0][:120]})"
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in LIGHTNING_KEYS):
        return "not a Lightning training checkpoint (no state_dict, global_step or loops)"
    saved = (ckpt.get(STAMP) or {}).get("stage")
    if stage is not None and saved is not None and saved != stage:
        return f"written by the {saved!r} stage, not {stage!r}"
    if verify == "full":
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
        if bad is not None:
            return f"corrupt data (CRC mismatch in {bad})"
    return None


def check_verify(verify: str) -> None:
    if verify not in VERIFY:
        raise ConfigError(f"checkpoint.verify={verify!r}: use one of {', '.join(VERIFY)}")


def candidates(stage_dir: Path) -> list[Path]:
    """Checkpoints under `<stage_dir>/checkpoints/`, plus Lightning's SLURM `hpc_ckpt_*.ckpt` in
    `<stage_dir>`, newest first."""
    found = (
        [p for p in (stage_dir / "checkpoints").glob("*.ckpt")]
        if (stage_dir / "checkpoints").is_dir()
        else []
    )
    found += list(stage_dir.glob("hpc_ckpt_*.ckpt")) if stage_dir.is_dir() else []
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def find_resume_checkpoint(
    stage_dir: Path, stage: str | None = None, verify: str = "full"
) -> str | None:
    """The newest usable checkpoint of `stage` under `stage_dir`; None when there is none.

    Each unusable one is skipped with a warning naming it; if checkpoints exist but none is
    usable, that is an error (silently restarting a long run from step 0 is worse)."""
    check_verify(verify)
    _remove_partial_writes(stage_dir / "checkpoints")
    skipped = []
    for path in candidates(stage_dir):
        problem = checkpoint_problem(path, stage, verify)
        if problem is None:
            return str(path)
        log.warning("skipping checkpoint %s: %s", path, problem)
        skipped.append(f"{path}: {problem}")
    if skipped:
        raise CheckpointError(
            "resume=true found no usable checkpoint:\n  "
            + "\n  ".join(skipped)
            + "\nmove them away to start over, or run with resume=false"
        )
    return None


def _remove_partial_writes(directory: Path) -> None:
    """Delete what a save killed half-way left (`.NAME.ckpt.<random>.tmp`): never a checkpoint,
    and as large as one."""
    for tmp in directory.glob(".*.ckpt.*.tmp") if directory.is_dir() else []:
        log.warning("removing %s, left by a checkpoint save that was interrupted", tmp)
        tmp.unlink(missing_ok=True)


def checkpoint_step(path: str | Path) -> int | None:
    """The global step a (file) checkpoint was saved at; None for a folder checkpoint."""
    path = Path(path)
    if path.is_dir():
        return None
    ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return int(ckpt["global_step"]) if isinstance(ckpt, dict) and "global_step" in ckpt else None


def prune_step_checkpoints(
    directory: Path, filename: str | None, keep: int, protect: str | None = None
) -> list[Path]:
    """Keep the newest `keep` checkpoints written with the `ModelCheckpoint` file name template
    `filename` (`step{step:06d}`; Lightning's default when None) in `directory`, and `protect`
    (the one a resume starts from); remove the older ones. `ModelCheckpoint`'s `save_top_k`
    counts only what its own process saved: without this, every restart leaves its last step
    checkpoints behind."""
    if keep < 0 or not directory.is_dir():
        return []
    pattern = re.sub(
        r"\*+", "*", re.sub(r"\{[^}]*\}", "*", filename or "{epoch}-{step}") + "*.ckpt"
    )
    found = sorted(directory.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
    protected = Path(protect).resolve() if protect else None
    old = [p for p in found[keep:] if p.resolve() != protected]
    for path in old:
        log.info("removing %s: beyond save_top_k=%d of an earlier run", path, keep)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return old


def last_good_checkpoint(stage_dir: Path, stage: str | None = None) -> str | None:
    """The newest usable checkpoint, for messages (never raises)."""
    for path in candidates(stage_dir):
        if checkpoint_problem(path, stage, "quick") is None:
            return str(path)
    return None
