"""Fault drills: make a run fail on purpose, the way real ones do, to prove it recovers.

Off unless a knob is set (`callbacks.fault_injection.<knob>=...`):
- `nan_at_steps`: training steps (0-based `global_step` when the step starts) whose forward
  passes produce NaN: the input embeddings of every trainable model are multiplied by NaN while
  gradients are enabled, so the loss and every gradient become non-finite, as with a real
  overflow (generation and validation run without gradients and stay clean).
- `kill_at_step` with `kill_signal` (default SIGKILL): the process signals itself in the middle
  of that step (after its forward and backward, before the optimizer update), as a dying node or
  a scheduler would; `global_step` counts the steps already done.
- `signal_at` (with `kill_signal`): the process signals itself once, at a named phase outside
  the training steps: `setup` (the Trainer's setup of its first run, before its signal
  handlers), `initial_validation` / `final_validation` (the first batch of the validation
  before / after training), `fit_validation` (the first batch of the first validation inside
  training, which comes after that step's checkpoints), `after_last_step` (the end of the last
  training step, after its checkpoints: the signal is still pending when training ends). The
  phases outside any Trainer (data and model setup, export, between stages, rejection
  sampling's sampling and scoring) are drilled by `tests/reliability/signal_child.py`, which
  wraps the functions that run them.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import lightning as L
import torch

PHASES = ("setup", "initial_validation", "final_validation", "fit_validation", "after_last_step")


class FaultInjection(L.Callback):
    def __init__(
        self,
        nan_at_steps: list[int] | None = None,
        kill_at_step: int | None = None,
        kill_signal: str = "SIGKILL",
        signal_at: str | None = None,
    ):
        if signal_at is not None and signal_at not in PHASES:
            raise ValueError(f"signal_at={signal_at!r}: use one of {', '.join(PHASES)}")
        self.nan_at_steps = set(nan_at_steps or [])
        self.kill_at_step, self.kill_signal = kill_at_step, kill_signal
        self.signal_at, self._signalled, self._trained = signal_at, False, False
        self._hooks: list[Any] = []

    def _signal(self, phase: str) -> None:
        if self.signal_at == phase and not self._signalled:
            self._signalled = True
            os.kill(os.getpid(), getattr(signal, self.kill_signal))

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._signal("setup")

    def on_validation_batch_start(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.state.fn == "validate":  # a Trainer.validate run, not fit's validation
            self._signal("final_validation" if self._trained else "initial_validation")
        elif trainer.state.fn == "fit" and not trainer.sanity_checking:
            self._signal("fit_validation")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._trained = True

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
        if 0 < trainer.max_steps <= trainer.global_step:
            self._signal("after_last_step")

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if self.kill_at_step is not None and trainer.global_step == self.kill_at_step:
            os.kill(os.getpid(), getattr(signal, self.kill_signal))
