"""Real (non-padding) training tokens per second, logged as `<stage>/tokens_per_sec`."""

from __future__ import annotations

import time
from typing import Any

import lightning as L


class TokenThroughput(L.Callback):
    """Counts target tokens (labels != -100, sequence lengths, or attention-mask tokens) between
    log steps.

    Wall time runs from one batch start to the next, so data loading is included, as a user
    would measure it. `log_every_n_steps` follows the Trainer's. Counts stay tensors on the
    batch's device until a log step, so a GPU step does not wait for the host.
    """

    def __init__(self) -> None:
        self._tokens: Any = 0
        self._since: float | None = None

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._since is None:
            self._since = time.perf_counter()

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self._tokens += _count_tokens(batch)
        if trainer.global_step % max(trainer.log_every_n_steps, 1) == 0 and self._since is not None:
            elapsed = time.perf_counter() - self._since
            if elapsed > 0:
                stage = getattr(pl_module, "stage", "train")
                tokens = float(self._tokens)  # the one host sync, once per log step
                pl_module.log(f"{stage}/tokens_per_sec", tokens * trainer.world_size / elapsed)
            self._tokens, self._since = 0, time.perf_counter()


def _count_tokens(batch: Any) -> Any:
    """A 0-d tensor (or an int) of the batch's target tokens."""
    if isinstance(batch, dict):
        if "seq_lengths" in batch:  # preference pairs, padded or packed
            return batch["seq_lengths"].sum()
        if "labels" in batch:
            return (batch["labels"] != -100).sum()
        if "attention_mask" in batch:
            return batch["attention_mask"].sum()
        if "input_ids" in batch:
            return batch["input_ids"].numel()
    return 0
