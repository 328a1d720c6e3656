"""Preemption: on SIGTERM or SIGUSR1, finish the current step, save a checkpoint and exit.

A scheduler that preempts a job sends SIGTERM (SLURM: SIGUSR1 first when asked to with
`--signal`). The handler only records the signal; at the end of the running training step,
where a checkpoint resumes exactly like a periodic one, the callback saves
`<stage>/checkpoints/preempted.ckpt` and the run exits with `PREEMPTED_EXIT_CODE` (75, EX_TEMPFAIL:
"try again later"). The requeued job runs the same command with `resume=true` and continues from
it (with no checkpoint yet, `resume=true` starts from scratch, so it is safe on a first run too).

With several ranks the decision is all-reduced each step, so every rank saves at the same step.
When Lightning's SLURM auto-requeue is on (`SLURMEnvironment(auto_requeue=True)`, the default
under SLURM), Lightning owns both signals: it saves `hpc_ckpt_<n>.ckpt` and requeues the job;
this callback then stands aside, and `resume=true` also considers those files.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

import lightning as L

from chimed_lit.io.errors import ChimedError
from chimed_lit.plugins import lightning_internals

log = logging.getLogger("chimed_lit")

PREEMPTED_EXIT_CODE = 75


class Preempted(ChimedError):
    """Stopped by a signal after saving a checkpoint; rerun with `resume=true`."""

    exit_code = PREEMPTED_EXIT_CODE


class PreemptionCheckpoint(L.Callback):
    def __init__(
        self,
        dirpath: str | None = None,
        signals: tuple[str, ...] = ("SIGTERM", "SIGUSR1"),
        filename: str = "preempted.ckpt",
    ):
        self.dirpath, self.filename = dirpath, filename
        self.signals = [
            getattr(signal, s) if isinstance(s, str) else signal.Signals(s) for s in signals
        ]
        self._received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        self._received = signum

    @staticmethod
    def _lightning_requeues(trainer: L.Trainer) -> bool:
        from lightning.fabric.plugins.environments import SLURMEnvironment

        env = lightning_internals.cluster_environment(trainer)
        return isinstance(env, SLURMEnvironment) and env.auto_requeue

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after Lightning registered its own handlers (Trainer._run): ours replace them for
        # the training loop, so a signal during validation is also honoured at the step's end
        if self._lightning_requeues(trainer):
            log.info("SLURM auto-requeue is on: Lightning handles preemption signals")
            return
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handler)

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if not self._previous:
            return
        stop = trainer.strategy.reduce_boolean_decision(self._received is not None, all=False)
        if not stop:
            return
        name = signal.Signals(self._received).name if self._received else "a signal on another rank"
        path = Path(self.dirpath or Path(trainer.default_root_dir) / "checkpoints") / self.filename
        trainer.save_checkpoint(str(path))
        self._restore()
        raise Preempted(
            f"preempted by {name} at step {trainer.global_step}: saved {path}; "
            f"run the same command with resume=true to continue "
            f"(exit code {PREEMPTED_EXIT_CODE})"
        )

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore()
