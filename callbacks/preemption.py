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

SIGINT (Ctrl-C) is handled the same way, with exit code 130 (`Interrupted`); a second Ctrl-C
stops at once. Outside the training loop the process-wide handlers of `io/signals.py` stop the
run where the signal arrives; this callback replaces them in `on_train_start` and gives them back
when training ends, and a signal recorded after the last step is raised then (`last.ckpt` holds
that step).
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

import lightning as L

from chimed_lit.io.signals import (
    INTERRUPT_SIGNALS,
    PREEMPT_SIGNALS,
    PREEMPTED_EXIT_CODE,
    Interrupted,
    Preempted,
    hint,
    stop_error,
)
from chimed_lit.plugins import lightning_internals

log = logging.getLogger("chimed_lit")

__all__ = ["PREEMPTED_EXIT_CODE", "Interrupted", "Preempted", "PreemptionCheckpoint"]


class PreemptionCheckpoint(L.Callback):
    def __init__(
        self,
        dirpath: str | None = None,
        signals: tuple[str, ...] = (*PREEMPT_SIGNALS, *INTERRUPT_SIGNALS),
        filename: str = "preempted.ckpt",
    ):
        self.dirpath, self.filename = dirpath, filename
        self.signals = [
            getattr(signal, s) if isinstance(s, str) else signal.Signals(s) for s in signals
        ]
        self._received: int | None = None
        self._previous: dict[int, Any] = {}
        self._armed = False  # our handlers are in place (not under Lightning's SLURM requeue)

    def _handler(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and self._received == signal.SIGINT:
            self._restore()  # Ctrl-C twice: stop now, without waiting for the step to end
            raise stop_error(signum, "again: stopped in the middle of a step")
        self._received = signum

    @staticmethod
    def _lightning_requeues(trainer: L.Trainer) -> bool:
        from lightning.fabric.plugins.environments import SLURMEnvironment

        env = lightning_internals.cluster_environment(trainer)
        return isinstance(env, SLURMEnvironment) and env.auto_requeue

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after Lightning registered its own handlers (Trainer._run): ours replace them for
        # the training loop, so a signal during validation is also honoured at the step's end
        self._received = None
        if self._lightning_requeues(trainer):
            log.info("SLURM auto-requeue is on: Lightning handles preemption signals")
            # as Lightning would have set them with no process-wide handler of ours
            for sig, handler in lightning_internals.slurm_requeue_handlers(trainer).items():
                self._previous[sig] = signal.signal(sig, handler)
            return
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handler)
        self._armed = True

    def _restore(self) -> None:
        """Give back the handlers found at train start: Lightning's, which call the
        process-wide ones of `io/signals.py` (restored in turn by Lightning's teardown)."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous, self._armed = {}, False

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if not self._armed:
            return
        stop = trainer.strategy.reduce_boolean_decision(self._received is not None, all=False)
        if not stop:
            return
        path = Path(self.dirpath or Path(trainer.default_root_dir) / "checkpoints") / self.filename
        trainer.save_checkpoint(str(path))
        self._restore()
        detail = f"at step {trainer.global_step}: saved {path}"
        if self._received is None:
            raise Preempted(
                f"preempted by a signal on another rank {detail}; {hint()} "
                f"(exit code {PREEMPTED_EXIT_CODE})"
            )
        raise stop_error(self._received, detail)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._armed:
            self._restore()
            return
        received = self._received
        # after the last step's end (its checkpoint is last.ckpt): every rank stops together
        stop = trainer.strategy.reduce_boolean_decision(received is not None, all=False)
        self._restore()
        if stop:
            raise stop_error(
                received or signal.SIGTERM, f"after the last step ({trainer.global_step})"
            )

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore()
