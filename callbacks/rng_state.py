"""Save and restore every RNG (python, numpy, torch) of every rank in checkpoints, for exact
resume: with N ranks each samples its own stream (PPO generation, dropout), and rank 0 writes
the checkpoint, so the states of all ranks are gathered into it."""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch


class RNGStateCallback(L.Callback):
    """Sampling (dropout, PPO generation) continues after `resume=true` as if never stopped.

    The saved state is applied in `on_train_start`, not when the checkpoint is read: Lightning
    restores callbacks before it sets up optimizers and data, and nothing that happens in between
    may shift the random streams."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        """This rank's states, plus every rank's under `ranks` (a collective: Lightning builds
        the checkpoint on all ranks)."""
        own = self._current()
        ranks = [own]
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            ranks = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(ranks, own)
        return {**own, "ranks": ranks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ranks = state.get("ranks") or [state]
        rank = (
            torch.distributed.get_rank()
            if (torch.distributed.is_available() and torch.distributed.is_initialized())
            else 0
        )
        if len(ranks) > 1 and rank >= len(ranks):  # resumed on more ranks than saved
            import logging

            logging.getLogger("chimed_lit").warning(
                "checkpoint holds RNG states of %d ranks, this is rank %d: it continues from "
                "rank %d's (sampling will not repeat the interrupted run exactly)",
                len(ranks),
                rank,
                rank % len(ranks),
            )
        self._pending = ranks[rank % len(ranks)]

    @staticmethod
    def _current() -> dict[str, Any]:
        name, keys, pos, has_gauss, cached = np.random.get_state()
        return {
            "python": random.getstate(),  # plain tensors and ints: loadable with weights_only
            "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending is not None:
            self._apply(self._pending)
            self._pending = None

    @staticmethod
    def _apply(state: dict[str, Any]) -> None:
        random.setstate(state["python"])
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        torch.set_rng_state(state["torch"])
        if state.get("cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
