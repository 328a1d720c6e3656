"""Fault drills: make a run fail on purpose, the way real ones do, to prove it recovers.

Off unless a knob is set (`callbacks.fault_injection.<knob>=...`):
- `nan_at_steps`: training steps (0-based `global_step` when the step starts) whose forward
  passes produce NaN: the input embeddings of every trainable model are multiplied by NaN while
  gradients are enabled, so the loss and every gradient become non-finite, as with a real
  overflow (generation and validation run without gradients and stay clean).
- `kill_at_step` with `kill_signal` (default SIGKILL): the process signals itself in the middle
  of that step (after its forward and backward, before the optimizer update), as a dying node or
  a scheduler would; `global_step` counts the steps already done.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import lightning as L
import torch


class FaultInjection(L.Callback):
    def __init__(
        self,
        nan_at_steps: list[int] | None = None,
        kill_at_step: int | None = None,
        kill_signal: str = "SIGKILL",
    ):
        self.nan_at_steps = set(nan_at_steps or [])
        self.kill_at_step, self.kill_signal = kill_at_step, kill_signal
        self._hooks: list[Any] = []

    @staticmethod
    def _poison(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor | None:
        return output * float("nan") if torch.is_grad_enabled() else None

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step not in self.nan_at_steps:
            return
        embeddings: dict[int, torch.nn.Module] = {}
        for module in pl_module.modules():
            get = getattr(module, "get_input_embeddings", None)
            if (
                callable(get)
                and hasattr(module, "config")
                and any(p.requires_grad for p in module.parameters())
            ):
                embeddings[id(get())] = get()
        self._hooks = [e.register_forward_hook(self._poison) for e in embeddings.values()]

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if self.kill_at_step is not None and trainer.global_step == self.kill_at_step:
            os.kill(os.getpid(), getattr(signal, self.kill_signal))
