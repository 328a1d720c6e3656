"""Optimizer parameter groups and the warmup + cosine schedule."""

from __future__ import annotations

import torch


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices only: norms and biases (1-D tensors) keep weight_decay=0, as in LLaMA.

    Shapes are read from `ds_shape` where DeepSpeed ZeRO-3 has partitioned a parameter (its
    local tensor is then a flat, possibly empty, shard); empty groups are left out."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if len(getattr(p, "ds_shape", p.shape)) >= 2 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


class WarmupCosine:
    """Linear warmup (`warmup_steps`, or `warmup_ratio` of all steps) then cosine decay to
    `min_lr_ratio` x the peak learning rate (held there past the horizon), stepped every
    optimizer step. `total_steps` (None: the Trainer's estimated steps) fixes the horizon, so
    a run stopped and resumed with a larger `max_steps` follows the same schedule."""

    def __init__(
        self,
        total_steps: int | None = None,
        warmup_steps: int | None = None,
        warmup_ratio: float = 0.05,
        min_lr_ratio: float = 0.1,
    ):
        self.total_steps, self.warmup_steps = total_steps, warmup_steps
        self.warmup_ratio, self.min_lr_ratio = warmup_ratio, min_lr_ratio

    def build(self, optimizer: torch.optim.Optimizer, total_steps: int):
        """A LambdaLR with transformers' `get_cosine_with_min_lr_schedule_with_warmup` factor
        up to the horizon, and the floor after it (transformers' cosine would climb again),
        written out: importing `transformers.optimization` pulls in its Trainer utilities and
        peft (6.5 MB of resident memory in every worker). A plain closure, so a checkpoint does
        not store the horizon (LambdaLR saves only callable objects' state)."""
        import math

        total_steps = self.total_steps or total_steps
        warmup = (
            self.warmup_steps
            if self.warmup_steps is not None
            else int(self.warmup_ratio * total_steps)
        )
        horizon, floor = max(total_steps, 1), self.min_lr_ratio

        def factor(step: int) -> float:
            if step < warmup:
                return step / max(1, warmup)
            progress = min(
                1.0, (step - warmup) / max(1, horizon - warmup)
            )  # then stay at the floor
            return max(0.0, floor + (1 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def optimizer_and_schedule(
    model: torch.nn.Module, optimizer_fn, scheduler: WarmupCosine, trainer
) -> tuple[torch.optim.Optimizer, object]:
    """An optimizer over `model` (weight decay on matrices only, from the partial's
    `weight_decay`) and its schedule over the Trainer's estimated optimizer steps."""
    import math

    decay = getattr(optimizer_fn, "keywords", {}).get("weight_decay", 0.0)
    optimizer = optimizer_fn(param_groups(model, decay))
    total = trainer.estimated_stepping_batches
    total = int(total) if math.isfinite(total) else 1000
    return optimizer, scheduler.build(optimizer, total)
