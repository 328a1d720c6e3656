"""A sampler and DataLoader that resume mid-epoch exactly where a checkpoint left off.

The order is a pure function of (seed, epoch), so a resumed run sees the same batches as an
uninterrupted one. Lightning stores the loader's `state_dict()` in every checkpoint (it is a
`_Stateful`); the state is read from the trainer's progress, not from the iterator, because
Lightning prefetches a batch ahead of the one being trained on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler


class ResumableSampler(Sampler[int]):
    """Shuffled (or sequential) indices for one rank, skipping batches already trained on."""

    def __init__(self, size: int, shuffle: bool = True, seed: int = 0, rank: int = 0,
                 world_size: int = 1):
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at each epoch start; a new epoch starts from its beginning."""
        if epoch != self.epoch:
            self.epoch, self.skip = epoch, 0

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        per_rank = self.size // self.world_size  # equal shares keep ranks in step
        mine = order[self.rank * per_rank:(self.rank + 1) * per_rank]
        yield from mine[self.skip:]

    def __len__(self) -> int:
        return self.size // self.world_size


class ResumableDataLoader(DataLoader):
    """A DataLoader whose position (epoch, batches done) travels in Lightning checkpoints."""

    def __init__(self, *args: Any, progress: Callable[[], tuple[int, int]] | None = None,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._progress = progress

    def state_dict(self) -> dict[str, int]:
        epoch, done = self._progress() if self._progress else (0, 0)
        return {"epoch": epoch, "batches_done": done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        sampler = self.sampler
        assert isinstance(sampler, ResumableSampler)
        batches = len(self)
        if state["batches_done"] >= batches:  # saved at the epoch's last batch
            sampler.epoch, sampler.skip = state["epoch"] + 1, 0
        else:
            sampler.epoch, sampler.skip = state["epoch"], state["batches_done"] * self.batch_size
