"""FSDP2 through Lightning's ModelParallelStrategy, with the sharding plan applied for the user.

Lightning asks the LightningModule to shard itself in `configure_model`; our modules inherit
`chimed_lit.modules.sharding.ShardedModelHook`, which calls `shard_models` below with this
strategy's options. Every decoder layer becomes one FSDP unit (all-gathered just before it
runs), then the whole model (embeddings, norm, head) the root unit.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.strategies import ModelParallelStrategy

from chimed_lit.plugins import lightning_internals


class FSDP2Strategy(ModelParallelStrategy):
    """Pure data-parallel sharding over every rank (no tensor parallelism). The process-group
    backend is Lightning's default for the root device: gloo on CPU, nccl on CUDA."""

    def __init__(
        self,
        reshard_after_forward: bool = True,
        cpu_offload: bool = False,
        save_distributed_checkpoint: bool = True,
        process_group_backend: str | None = None,
    ):
        super().__init__(
            data_parallel_size="auto",
            tensor_parallel_size=1,
            save_distributed_checkpoint=save_distributed_checkpoint,
            process_group_backend=process_group_backend,
        )
        self.reshard_after_forward = reshard_after_forward
        self.cpu_offload = cpu_offload

    def setup_environment(self) -> None:
        lightning_internals.shard_over_every_rank(self)  # Lightning's "auto" is per node
        super().setup_environment()


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated transformer blocks of a transformers model (LLaMA, Qwen2, Baichuan ...)."""
    names = getattr(model, "_no_split_modules", None) or []
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise TypeError(
            f"{type(model).__name__}: no decoder layers found to shard "
            "(the model class declares no `_no_split_modules`)"
        )
    return layers


def shard_models(models: list[torch.nn.Module], strategy: Any) -> None:
    """Apply `fully_shard` to each decoder layer, the backbone, each other top-level piece that
    holds parameters (LM head, reward/value head) and then each model as a whole.

    Separate units for the backbone and the heads let code call them on their own (the critic
    reads values as `score(backbone(...))`): each gathers its own parameters when called."""
    from torch.distributed.fsdp import CPUOffloadPolicy, OffloadPolicy, fully_shard

    mesh = strategy.device_mesh["data_parallel"]
    options: dict[str, Any] = {
        "mesh": mesh,
        "reshard_after_forward": strategy.reshard_after_forward,
        "offload_policy": CPUOffloadPolicy() if strategy.cpu_offload else OffloadPolicy(),
    }
    for model in models:
        for layer in decoder_layers(model):
            fully_shard(layer, **options)
        for child in model.children():
            if any(True for _ in child.parameters()):
                fully_shard(child, **options)
        fully_shard(model, **options)
