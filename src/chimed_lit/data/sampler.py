"""A sampler and DataLoader that resume mid-epoch exactly where a checkpoint left off.

The order of each pass over the data is a pure function of (seed, pass number), so a resumed
run sees the same batches as an uninterrupted one. The sampler counts its own passes rather
than trusting the Trainer's epoch number, which Lightning advances when `max_steps` stops a run
mid-epoch. Lightning stores the loader's `state_dict()` in every checkpoint (the loader is a
`_Stateful`); the position is read from the trainer's progress, not from the iterator, because
Lightning prefetches a batch ahead of the one being trained on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler


class ResumableSampler(Sampler[int]):
    """Shuffled (or sequential) indices for one rank, skipping samples already trained on.

    Ranks take turns by blocks of `block` indices (the per-rank batch size): step i of N ranks
    then trains on the same samples, grouped the same way, as N accumulated micro-batches of a
    single process, so a run's result does not depend on how its global batch is split."""

    def __init__(
        self,
        size: int,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        block: int = 1,
    ):
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.rank, self.world_size, self.block = rank, world_size, max(1, block)
        self.current_pass = -1  # the pass being iterated
        self.next_pass, self.skip = 0, 0

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this each epoch; passes are counted by the sampler itself."""

    def __iter__(self) -> Iterator[int]:
        self.current_pass, skip = self.next_pass, self.skip
        self.next_pass, self.skip = self.next_pass + 1, 0
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.current_pass)
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        n = self.size // self.world_size * self.world_size  # equal shares keep ranks in step
        span = self.block * self.world_size
        full = n // span * span
        mine = [order[j] for j in range(full) if (j % span) // self.block == self.rank]
        mine += order[full + self.rank : n : self.world_size]
        yield from mine[skip:]

    def __len__(self) -> int:
        return self.size // self.world_size


class ResumableDataLoader(DataLoader):
    """A DataLoader whose position (pass, batches done) travels in Lightning checkpoints.

    `progress()` returns the batches the trainer finished in the current pass."""

    def __init__(self, *args: Any, progress: Callable[[], int] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._progress = progress

    def state_dict(self) -> dict[str, int]:
        sampler = self.sampler
        assert isinstance(sampler, ResumableSampler)
        done = self._progress() if self._progress else 0
        return {"pass": max(sampler.current_pass, 0), "batches_done": done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        sampler = self.sampler
        assert isinstance(sampler, ResumableSampler)
        if state["batches_done"] >= len(self):  # saved at the pass's last batch
            sampler.next_pass, sampler.skip = state["pass"] + 1, 0
        else:
            sampler.next_pass, sampler.skip = state["pass"], state["batches_done"] * self.batch_size
