"""Dropout off in a model that trains: PPO compares the policy's log-probs (and the critic's
values) across forwards of the same weights, and dropout would make that ratio noise. The same
choice as TRL's `disable_dropout` and DeepSpeed-Chat; the models stay in train mode (activation
checkpointing needs it)."""

from __future__ import annotations

import torch


def disable_dropout(model: torch.nn.Module) -> int:
    """Zero every `nn.Dropout` and every attention module's `attention_dropout` (transformers'
    LLaMA, Qwen and kin apply it as a float); returns how many were switched off."""
    count = 0
    for module in model.modules():
        if isinstance(module, torch.nn.modules.dropout._DropoutNd) and module.p > 0:
            module.p = 0.0
            count += 1
        rate = getattr(module, "attention_dropout", None)
        if isinstance(rate, float) and rate > 0:
            module.attention_dropout = 0.0
            count += 1
    return count
