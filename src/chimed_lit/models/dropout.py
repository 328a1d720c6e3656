"""Dropout off in a model that trains: PPO compares the policy's log-probs (and the critic's
values) across forwards of the same weights, and dropout would make that ratio noise. The same
choice as TRL's `disable_dropout` and DeepSpeed-Chat; the models stay in train mode (activation
checkpointing needs it)."""

from __future__ import annotations

import torch


def disable_dropout(model: torch.nn.Module) -> None:
    """Zero every `nn.Dropout` and every attention module's `attention_dropout` (transformers'
    LLaMA, Qwen and kin apply it as a float)."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.dropout._DropoutNd):
            module.p = 0.0
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = 0.0
