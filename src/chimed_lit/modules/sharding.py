"""The `configure_model` hook our LightningModules share, and generation on sharded weights."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


class ShardedModelHook:
    """Mixin for LightningModules: under `strategy=fsdp2` shard every transformers model held
    as an attribute (trained ones; frozen ones too, such as PPO's reference and reward models,
    which then gather each layer only while it runs, like ZeRO-3 inference); under any other
    strategy do nothing (DeepSpeed and DDP wrap the module themselves)."""

    def configure_model(self) -> None:
        from chimed_lit.plugins.fsdp2 import FSDP2Strategy, shard_models

        strategy = self.trainer.strategy
        if not isinstance(strategy, FSDP2Strategy) or getattr(self, "_sharded", False):
            return
        from transformers import PreTrainedModel

        shard_models([m for m in self.children() if isinstance(m, PreTrainedModel)], strategy)
        self._sharded = True


@contextmanager
def gathered(model: torch.nn.Module) -> Iterator[None]:
    """Keep an FSDP2-sharded model's parameters gathered until the block ends.

    Token-by-token generation calls the model once per token; sharded as in training, every
    call would all-gather every layer again. Inside this block the first call gathers each unit
    once and the rest reuse it; at the end every unit is resharded. A no-op for a model that
    is not sharded."""
    from torch.distributed.fsdp import FSDPModule

    units = [m for m in model.modules() if isinstance(m, FSDPModule)]
    if not units:
        yield
        return
    for unit in units:
        unit.set_reshard_after_forward(False, recurse=False)
    try:
        yield
    finally:
        for unit in units:
            unit.reshard()
            unit.set_reshard_after_forward(True, recurse=False)
