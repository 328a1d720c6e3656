"""`DPOModule`: preference optimisation straight from pairs, no reward model and no sampling.

Knobs:
- `loss_type`: `sigmoid` (DPO), `ipo`, `hinge` (SLiC), against a frozen reference; or the
  reference-free `orpo` and `simpo`. The losses are the pure functions of
  `chimed_lit.losses.preference`.
- `beta`: the inverse temperature of the implicit reward (DPO, IPO, hinge, SimPO).
- `label_smoothing`: conservative DPO (sigmoid only), the assumed rate of flipped labels.
- `simpo_gamma`: SimPO's target reward margin; `orpo_lambda`: ORPO's odds-ratio weight.
- `optimizer`, `scheduler`: as in the other stages (matrices decayed, warmup + cosine).
- `disable_dropout`: zero the policy's dropout, so the policy's and the reference's log-probs
  differ by the weights alone (TRL's default too).
- `stage`: the metric namespace (`dpo/...`).

Models: `model` (the policy, from the SFT output; what the stage exports) and `ref` (a frozen
copy of it). `ref` is None for ORPO and SimPO, and also when `model` carries LoRA adapters:
the reference is then the same model with its adapters switched off, one base in memory.

One batch of the `PreferenceDataModule` holds the chosen rows then the rejected rows; both go
through the policy in one forward pass, and through the reference in one more, without
gradients. A response's log-prob is the sum over its tokens (the EOS included) of the policy's
token log-probs; IPO, SimPO and ORPO use the per-token mean, as their papers do.

Metrics: `train_loss`, `train_reward_accuracy`, `lr` per step; per validation `val_loss`,
`reward_accuracy` (pairs whose chosen implicit reward is strictly higher), `reward_margin`,
`logps_chosen` and `logps_rejected` (mean summed log-probs under the policy).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import lightning as L
import torch
from torchmetrics import MeanMetric

from chimed_lit.io.errors import ConfigError
from chimed_lit.losses.causal_lm import IGNORE, per_token_logps
from chimed_lit.losses.preference import dpo_loss, orpo_loss, simpo_loss
from chimed_lit.models import dropout
from chimed_lit.modules.optim import WarmupCosine, optimizer_and_schedule
from chimed_lit.modules.sharding import ShardedModelHook

LOSS_TYPES = ("sigmoid", "ipo", "hinge", "orpo", "simpo")
REFERENCE_FREE = ("orpo", "simpo")


def check_dpo_config(module: Any) -> None:
    """Bad `stage.module` values of the dpo stage as a `ConfigError`, before anything trains."""
    problems = []
    loss_type = module.get("loss_type", "sigmoid")
    if loss_type not in LOSS_TYPES:
        problems.append(f"stage.module.loss_type={loss_type!r}: use one of {', '.join(LOSS_TYPES)}")
    if not float(module.get("beta", 0.1)) > 0:
        problems.append(f"stage.module.beta={module.get('beta')}: must be > 0")
    if not 0 <= float(module.get("label_smoothing", 0.0)) < 0.5:
        problems.append("stage.module.label_smoothing must be in [0, 0.5)")
    if problems:
        raise ConfigError(problems)


def response_labels(batch: dict[str, Any]) -> torch.Tensor:
    """Labels on each row's response tokens (its last `response_lengths` attended tokens)."""
    ids, mask = batch["input_ids"], batch["attention_mask"]
    lengths = mask.sum(-1)
    positions = torch.arange(ids.shape[1], device=ids.device)
    start = (lengths - batch["response_lengths"].to(ids.device)).unsqueeze(-1)
    on_response = (positions >= start) & (positions < lengths.unsqueeze(-1))
    return torch.where(on_response, ids, torch.full_like(ids, IGNORE))


class DPOModule(ShardedModelHook, L.LightningModule):
    def __init__(
        self,
        model: torch.nn.Module,
        ref: torch.nn.Module | None = None,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: WarmupCosine | None = None,
        loss_type: str = "sigmoid",
        beta: float = 0.1,
        label_smoothing: float = 0.0,
        simpo_gamma: float = 0.5,
        orpo_lambda: float = 0.1,
        disable_dropout: bool = True,
        stage: str = "dpo",
    ):
        super().__init__()
        if loss_type not in LOSS_TYPES:
            raise ValueError(f"stage.module.loss_type={loss_type!r}: use one of {LOSS_TYPES}")
        if (
            ref is None
            and loss_type not in REFERENCE_FREE
            and not hasattr(model, "disable_adapter")
        ):
            raise ValueError(f"loss_type={loss_type!r} needs a reference model (or LoRA adapters)")
        self.strict_loading = False  # the reference is rebuilt from its dir, not checkpointed
        self.model, self.ref = model, ref
        if ref is not None:
            ref.eval().requires_grad_(False)
        if disable_dropout:
            dropout.disable_dropout(model)
        self.optimizer_fn = optimizer or partial(torch.optim.AdamW, lr=1e-5)
        self.scheduler = scheduler or WarmupCosine()
        self.loss_type, self.beta, self.label_smoothing = loss_type, beta, label_smoothing
        self.simpo_gamma, self.orpo_lambda, self.stage = simpo_gamma, orpo_lambda, stage
        self.val_metrics = torch.nn.ModuleDict(
            {
                k: MeanMetric()
                for k in (
                    "val_loss",
                    "reward_accuracy",
                    "reward_margin",
                    "logps_chosen",
                    "logps_rejected",
                )
            }
        )

    # 1. sequence log-probs of every row: summed and per-token mean over the response
    def sequence_logps(self, model: torch.nn.Module, batch: dict[str, Any]):
        labels = response_labels(batch)
        logits = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False
        ).logits
        summed = per_token_logps(logits, labels).sum(-1)
        return summed, summed / batch["response_lengths"].to(summed.device).clamp(min=1)

    def reference_logps(self, batch: dict[str, Any]):
        """The frozen reference's log-probs, without gradients: the `ref` model, or the policy
        with its LoRA adapters disabled."""
        with torch.no_grad():
            if self.ref is not None:
                return self.sequence_logps(self.ref, batch)
            was_training = self.model.training
            self.model.eval()
            with self.model.disable_adapter():
                out = self.sequence_logps(self.model, batch)
            self.model.train(was_training)
            return out

    # 2. the loss of one batch of pairs
    def pair_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        n = int(batch["n_pairs"])
        summed, mean = self.sequence_logps(self.model, batch)
        if self.loss_type == "simpo":
            loss, stats = simpo_loss(mean[:n], mean[n:], self.beta, self.simpo_gamma)
        elif self.loss_type == "orpo":
            loss, stats = orpo_loss(mean[:n], mean[n:], -mean[:n], self.orpo_lambda)
        else:
            ref_summed, ref_mean = self.reference_logps(batch)
            pol, ref = (mean, ref_mean) if self.loss_type == "ipo" else (summed, ref_summed)
            loss, stats = dpo_loss(
                pol[:n], pol[n:], ref[:n], ref[n:], self.beta, self.loss_type, self.label_smoothing
            )  # type: ignore[arg-type]
        stats["logps_chosen"] = summed[:n].detach().mean()
        stats["logps_rejected"] = summed[n:].detach().mean()
        return loss, stats

    # 3. a training step
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, stats = self.pair_loss(batch)
        n, s = int(batch["n_pairs"]), self.stage
        self.log(f"{s}/train_loss", loss, prog_bar=True, batch_size=n)
        self.log(f"{s}/train_reward_accuracy", stats["accuracy"], batch_size=n)
        self.log(f"{s}/train_reward_margin", stats["reward_margin"], batch_size=n)
        self.log(f"{s}/lr", self.optimizers().param_groups[0]["lr"], batch_size=n)
        return loss

    # 4. validation: the same loss and implicit-reward statistics on held-out pairs
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        loss, stats = self.pair_loss(batch)
        n = int(batch["n_pairs"])
        values = {
            "val_loss": loss,
            "reward_accuracy": stats["accuracy"],
            "reward_margin": stats["reward_margin"],
            "logps_chosen": stats["logps_chosen"],
            "logps_rejected": stats["logps_rejected"],
        }
        for key, value in values.items():
            self.val_metrics[key].update(value.detach(), weight=n)

    def on_validation_epoch_end(self) -> None:
        for key, metric in self.val_metrics.items():
            self.log(f"{self.stage}/{key}", metric.compute(), prog_bar=key == "reward_accuracy")
            metric.reset()

    # 5. optimizer and schedule (only trainable parameters: all, or the LoRA adapters)
    def configure_optimizers(self) -> dict[str, Any]:
        optimizer, schedule = optimizer_and_schedule(
            self.model, self.optimizer_fn, self.scheduler, self.trainer
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Only what trains is saved: all of the policy, or its adapters under LoRA. The
        reference and a frozen base are rebuilt from their dirs on resume. Under FSDP2 every
        shard is kept: its sharded checkpoints load strictly."""
        if getattr(self, "_sharded", False):
            return
        frozen = {n for n, p in self.named_parameters() if not p.requires_grad}
        checkpoint["state_dict"] = {
            k: v
            for k, v in checkpoint["state_dict"].items()
            if not k.startswith("ref.") and k not in frozen
        }
