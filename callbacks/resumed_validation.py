"""The validation due at a checkpoint's step runs after `resume=true` when the interrupted run
did not finish it, and only then.

Every checkpoint of a stage is written at the end of a training batch (periodic, `last.ckpt`,
`preempted.ckpt`), before the validation Lightning runs after that batch. Resumed from it,
Lightning marks that validation done without running it: a run killed in it (or preempted at
that step) never logs it. The checkpoint cannot say whether it finished, since it was written
first, so this callback keeps the answer beside it: after each validation inside fit, global
rank 0 writes `checkpoints/validated.json` (`{"lineage": ..., "step": ...}`); the lineage is a
random id of the run that started from step 0, kept in this callback's state in every checkpoint
(a resumed run continues its lineage). At train start of a resumed fit whose restored step had a
validation due (`plugins/lightning_internals.restored_validation_is_skipped`), the validation
runs once (`lightning_internals.run_fit_validation`) unless the file records the same lineage
at that step or later; rank 0 decides for every rank.

A checkpoint written before this callback existed has no lineage: its validation runs again.
Resumed at `max_steps`, Lightning calls no training hook: the stage's final validation reports
those weights.
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import Any

import lightning as L

from chimed_lit.io.atomic import write_json
from chimed_lit.plugins import lightning_internals

log = logging.getLogger("chimed_lit")

RECORD = "validated.json"


class ResumedValidation(L.Callback):
    def __init__(self, dirpath: str | Path | None = None):
        self.dirpath = Path(dirpath) if dirpath is not None else None
        self.lineage = uuid.uuid4().hex

    def state_dict(self) -> dict[str, Any]:
        return {"lineage": self.lineage}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lineage = str(state.get("lineage") or self.lineage)

    def _record(self, trainer: L.Trainer) -> Path:
        return (self.dirpath or Path(trainer.default_root_dir) / "checkpoints") / RECORD

    def _finished(self, trainer: L.Trainer) -> bool:
        """Whether this lineage finished a validation at the restored step or later."""
        try:
            seen = json.loads(self._record(trainer).read_text())
            return seen["lineage"] == self.lineage and int(seen["step"]) >= trainer.global_step
        except (OSError, ValueError, KeyError, TypeError):
            return False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not lightning_internals.restored_validation_is_skipped(trainer):
            return
        finished = self._finished(trainer) if trainer.is_global_zero else False
        if trainer.strategy.broadcast(finished, src=0):
            return
        log.info(
            "running the validation due at step %d, which the interrupted run did not finish",
            trainer.global_step,
        )
        lightning_internals.run_fit_validation(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn != "fit" or trainer.sanity_checking or not trainer.is_global_zero:
            return
        write_json(self._record(trainer), {"lineage": self.lineage, "step": trainer.global_step})
