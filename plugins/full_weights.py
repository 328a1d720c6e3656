"""The whole model's weights, from wherever a sharding strategy keeps them.

Exporting `hf/` after ZeRO-3 or FSDP2 must first assemble parameters that live in pieces across
ranks. Every rank must call `full_state_dict` (it is a collective); rank 0 gets the CPU state
dict to save, the others get None. For unsharded strategies it returns None everywhere: the model
in memory is already whole.
"""

from __future__ import annotations

from typing import Any

import torch


def full_state_dict(strategy: Any, model: torch.nn.Module) -> dict[str, torch.Tensor] | None:
    from chimed_lit.plugins.deepspeed import ChimedDeepSpeedStrategy
    from chimed_lit.plugins.fsdp2 import FSDP2Strategy

    if isinstance(strategy, FSDP2Strategy):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        sd = get_model_state_dict(
            model, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )
        return sd if strategy.is_global_zero else None
    if isinstance(strategy, ChimedDeepSpeedStrategy) and strategy.zero_stage_3:
        import deepspeed

        params = list(model.parameters())
        with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
            if not strategy.is_global_zero:
                return None
            return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    return None
