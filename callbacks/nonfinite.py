"""A non-finite loss or gradient is caught inside the step, before the optimizer applies it.

Policy (`on_nonfinite` in fit.yaml):
- `stop` (default): raise `NonFiniteError` before the update, so nothing is saved from the bad
  state (no checkpoint, no export); the message names the last good checkpoint to resume from.
- `skip`: drop that update (its gradients are set to None, so the optimizer leaves every
  parameter and moment untouched), count it as `<stage>/nonfinite_skipped`, and go on with the
  next batch. The batch is consumed and the step counter advances as for any step.

The loss is seen in `on_before_backward` and the gradients in `on_before_optimizer_step`, the
hooks Lightning calls under automatic optimization; a module that steps its optimizers itself
(PPO) calls `on_before_optimizer_step` of the callbacks before each update.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch

from chimed_lit.io.errors import ChimedError, ConfigError

log = logging.getLogger("chimed_lit")

POLICIES = ("stop", "skip")


class NonFiniteError(ChimedError):
    """Training produced NaN or Inf; the state before it is kept."""

    exit_code = 5


def nonfinite_grads(optimizer: torch.optim.Optimizer) -> bool:
    """Any NaN or Inf among the gradients this optimizer would apply."""
    grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    if not grads:
        return False
    norms = torch._foreach_norm([g.detach().float() for g in grads])
    return not bool(torch.isfinite(torch.stack(norms)).all())


def check_policy(policy: str) -> None:
    if policy not in POLICIES:
        raise ConfigError(f"on_nonfinite={policy!r}: use one of {', '.join(POLICIES)}")


class NonFiniteGuard(L.Callback):
    def __init__(self, policy: str = "stop", dirpath: str | None = None):
        check_policy(policy)
        self.policy, self.dirpath = policy, dirpath
        self.skipped = 0
        self._bad_loss: float | None = None

    def state_dict(self) -> dict[str, int]:
        return {"skipped": self.skipped}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.skipped = int(state.get("skipped", 0))

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        if not bool(torch.isfinite(loss.detach()).all()):
            self._bad_loss = float(loss.detach().float().reshape(-1)[0])

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        bad_loss, self._bad_loss = self._bad_loss, None
        bad = bad_loss is not None or nonfinite_grads(optimizer)
        bad = trainer.strategy.reduce_boolean_decision(bad, all=False)  # every rank alike
        stage = getattr(pl_module, "stage", "train")
        what = f"loss {bad_loss}" if bad_loss is not None else "gradient"
        if bad and self.policy == "stop":
            raise NonFiniteError(self._stop_message(trainer, stage, what))
        if bad:
            optimizer.zero_grad(set_to_none=True)
            self.skipped += 1
            log.warning(
                "%s: non-finite %s at step %d: update skipped (%d so far)",
                stage,
                what,
                trainer.global_step,
                self.skipped,
            )
        if trainer.training:
            pl_module.log(f"{stage}/nonfinite_skipped", float(self.skipped), reduce_fx="max")

    def _stop_message(self, trainer: L.Trainer, stage: str, what: str) -> str:
        from chimed_lit.io.checkpoints import last_good_checkpoint

        sdir = Path(self.dirpath).parent if self.dirpath else Path(trainer.default_root_dir)
        last = last_good_checkpoint(sdir, stage)
        where = (
            f"the last good checkpoint is {last} (resume=true continues from it)"
            if last
            else "no checkpoint was saved before it"
        )
        return (
            f"{stage}: non-finite {what} at step {trainer.global_step}; stopped before the "
            f"update, nothing of this state was saved; {where}; on_nonfinite=skip drops "
            "such updates instead"
        )
