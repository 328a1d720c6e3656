"""DeepSpeed ZeRO through Lightning, on GPUs and (for try-outs and CI) on CPU.

The DeepSpeed JSON is not a file the user keeps in step by hand: `strategy/deepspeed_*.yaml`
holds it as a `config:` node whose batch, accumulation and clipping entries interpolate the
trainer and data config (`chimed-lit fit --cfg job --resolve` prints it), and the mixed-precision
section is added by Lightning from `trainer.precision`. What DeepSpeed finally ran with is written
to `<stage>/deepspeed_config.json`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.strategies import DeepSpeedStrategy

from chimed_lit.io.errors import ConfigError
from chimed_lit.plugins import lightning_internals


def zero_config_problems(
    zero_stage: Any, offload_parameters: bool = False, offload_optimizer: bool = False
) -> list[str]:
    """What is wrong with a ZeRO stage and offload choice, worded for the user's config keys
    (`strategy.zero_stage` ...); empty when DeepSpeed can run it. The one copy of this check:
    the strategy's builder raises with it, and the run's preflight reports it with the rest.
    (Optimizer offload works at every stage, so `offload_optimizer` adds no problem today.)"""
    if zero_stage not in (1, 2, 3):
        return [f"strategy.zero_stage={zero_stage}: DeepSpeed ZeRO stages are 1, 2 and 3"]
    if offload_parameters and zero_stage != 3:
        return [
            (
                "strategy.offload_parameters=true needs strategy.zero_stage=3 "
                "(use strategy=deepspeed_zero3_offload)"
            )
        ]
    return []


def zero_config(
    stage: int,
    offload_optimizer: bool = False,
    offload_parameters: bool = False,
    overlap_comm: bool = True,
    contiguous_gradients: bool = True,
    reduce_bucket_size: int = 200_000_000,
) -> dict[str, Any]:
    """The `zero_optimization` section for ZeRO stage 1, 2 or 3 (parameters offload only at 3);
    `ConfigError` with `zero_config_problems` otherwise."""
    problems = zero_config_problems(stage, offload_parameters, offload_optimizer)
    if problems:
        raise ConfigError(problems)
    cfg: dict[str, Any] = {
        "stage": stage,
        "overlap_comm": overlap_comm,
        "contiguous_gradients": contiguous_gradients,
        "reduce_bucket_size": reduce_bucket_size,
    }
    if stage == 3:
        cfg.update(stage3_gather_16bit_weights_on_model_save=True)
    if offload_optimizer:
        cfg["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    if offload_parameters:
        cfg["offload_param"] = {"device": "cpu", "pin_memory": True}
    return cfg


def _on_cpu(accelerator: Any) -> bool:
    from lightning.pytorch.accelerators import CUDAAccelerator

    return not isinstance(accelerator, CUDAAccelerator)


class ChimedDeepSpeedStrategy(DeepSpeedStrategy):
    """Lightning's DeepSpeedStrategy that also runs on CPU (DeepSpeed's CPU accelerator, gloo), so
    the same configs are exercised on a laptop and in CI. On CUDA it is Lightning's own.

    The CPU path relies on Lightning internals, each in `chimed_lit.plugins.lightning_internals`
    (tested with the Lightning range pinned in pyproject.toml). The process-group backend is
    Lightning's default for the root device: gloo on CPU, nccl on CUDA."""

    def __init__(self, *args: Any, write_config_to: str | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.write_config_to = write_config_to

    def setup_environment(self) -> None:
        if _on_cpu(self.accelerator):
            lightning_internals.deepspeed_setup_environment_on_cpu(self)
        else:
            super().setup_environment()

    def setup_distributed(self) -> None:
        if _on_cpu(self.accelerator):
            lightning_internals.deepspeed_setup_distributed_on_cpu(self)
        else:
            super().setup_distributed()

    @property
    def root_device(self) -> torch.device:
        device = super().root_device
        return torch.device("cpu", 0) if device.type == "cpu" else device  # DeepSpeed reads .index

    def init_deepspeed(self) -> None:
        super().init_deepspeed()
        if self.write_config_to and self.is_global_zero:
            from chimed_lit.io.atomic import write_text

            path = Path(self.write_config_to)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text(path, json.dumps(self.config, indent=2, sort_keys=True, default=str) + "\n")


def deepspeed(
    config: dict[str, Any],
    zero_stage: int = 2,
    offload_optimizer: bool = False,
    offload_parameters: bool = False,
    process_group_backend: str | None = None,
    write_config_to: str | None = None,
    **kwargs: Any,
) -> ChimedDeepSpeedStrategy:
    """Build the strategy from the `strategy/deepspeed_*.yaml` preset.

    `config` is the DeepSpeed JSON of the preset (batch entries interpolated from `data` and
    `trainer`); its `zero_optimization` comes from `zero_stage` and the offload switches.
    `gradient_accumulation_steps` is checked against, then left to, Lightning, which sets it
    from `trainer.accumulate_grad_batches` itself. An impossible ZeRO choice raises
    `ConfigError` (`zero_config_problems`, from `zero_config`) before anything is built."""
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # before deepspeed is imported
    ds = dict(config or {})
    ds.pop("gradient_accumulation_steps", None)  # Lightning refuses it; it sets the same value
    if ds.get("gradient_clipping") is None:
        ds["gradient_clipping"] = 0.0
    ds["zero_optimization"] = zero_config(zero_stage, offload_optimizer, offload_parameters)
    # our optimizers are torch's AdamW from the stage config; with the optimizer offloaded,
    # `optimizer._target_=deepspeed.ops.adam.DeepSpeedCPUAdam` is faster (compiles on first use)
    ds.setdefault("zero_allow_untested_optimizer", True)
    if offload_optimizer:
        ds.setdefault("zero_force_ds_cpu_optimizer", False)
    return ChimedDeepSpeedStrategy(
        config=ds,
        process_group_backend=process_group_backend,
        write_config_to=write_config_to,
        **kwargs,
    )
