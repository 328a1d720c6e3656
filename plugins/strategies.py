"""Strategy builders named by the `strategy/` config group.

Each returns what Lightning's `Trainer(strategy=...)` accepts, so the same YAML drives a
laptop CPU and a GPU node.
"""

from __future__ import annotations

from typing import Any


def auto() -> str:
    """Let Lightning choose (single device, or DDP when `trainer.devices` > 1)."""
    return "auto"


def ddp(find_unused_parameters: bool = False, **kwargs: Any):
    """DistributedDataParallel; gloo on CPU (nccl would fail there), nccl on CUDA."""
    import torch
    from lightning.pytorch.strategies import DDPStrategy

    backend = kwargs.pop("process_group_backend", None) or (
        "nccl" if torch.cuda.is_available() else "gloo"
    )
    return DDPStrategy(
        find_unused_parameters=find_unused_parameters, process_group_backend=backend, **kwargs
    )


def fsdp2(
    reshard_after_forward: bool = True,
    cpu_offload: bool = False,
    save_distributed_checkpoint: bool = True,
    process_group_backend: str | None = None,
):
    """FSDP2 (`torch.distributed.fsdp.fully_shard`) over all ranks; see `FSDP2Strategy`."""
    from chimed_lit.plugins.fsdp2 import FSDP2Strategy

    return FSDP2Strategy(
        reshard_after_forward=reshard_after_forward,
        cpu_offload=cpu_offload,
        save_distributed_checkpoint=save_distributed_checkpoint,
        process_group_backend=process_group_backend,
    )
