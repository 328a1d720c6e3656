"""Save `last.ckpt` when training ends, whatever the step, so `resume=true` continues exactly.

When `max_steps` ends the run, it saves at the end of that last batch, exactly as a periodic
checkpoint is saved: Lightning restores that state correctly even when the batch was the last
of an epoch (a save made later, in `on_train_end`, would replay one batch there). Runs that end
on `max_epochs` save in `on_train_end`, while the fit loop still holds the dataloader whose
position goes into the checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L


class FinalCheckpoint(L.Callback):
    def __init__(self, dirpath: str | None = None, filename: str = "last.ckpt"):
        self.dirpath, self.filename = dirpath, filename
        self._saved_at: int | None = None

    def _save(self, trainer: L.Trainer) -> None:
        if self.dirpath is not None:
            trainer.save_checkpoint(str(Path(self.dirpath) / self.filename))
            self._saved_at = trainer.global_step

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if 0 < trainer.max_steps <= trainer.global_step and self._saved_at != trainer.global_step:
            self._save(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._saved_at != trainer.global_step:
            self._save(trainer)
