"""`RewardModule`: a pairwise (Bradley-Terry) reward model, the scalar PPO maximises.

Knobs:
- `optimizer`: a partial optimizer (None: AdamW, lr 1e-5); `weight_decay` applies to matrices only.
- `scheduler`: `WarmupCosine`, stepped per optimizer step.
- `margin`: None, or a float the chosen reward must beat the rejected one by (Llama 2's margin).
- `center_coef`: weight of the mean squared reward, pinning the shift-free reward scale near 0.
- `stage`: the metric namespace (`reward/accuracy`, ...).

The reward of a sequence is the scalar head applied to the hidden state of its last attended
token (the response's EOS), found from `attention_mask`, not from `pad_token_id`: transformers'
*ForSequenceClassification takes the rightmost token that is not the pad id, which, when a
tokenizer pads with its EOS, is the token before the EOS. `score_sequences` is the one scoring
function; PPO should use it too. With a pad id distinct from EOS (the demo tokenizer, or any
set by `ModelFactory` from `unk`), plain `AutoModelForSequenceClassification` gives the same
scores. Validation writes the reward mean and std into `model.config` (`reward_mean`,
`reward_std`) so they travel with `save_pretrained` and PPO can normalise rewards.

Metrics: `train_loss`, `train_accuracy`, `lr` per step; per validation `accuracy`, `margin`
(mean chosen - rejected), `mean` and `std` (over every scored response), `length_corr` (Pearson
correlation of reward with response length in tokens: a high value warns that the model pays
for length, the easiest reward hack).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import lightning as L
import torch
from torchmetrics import CatMetric, MeanMetric, PearsonCorrCoef

from chimed_lit.losses.preference import reward_pairwise_loss
from chimed_lit.models.document_attention import spans_kwargs
from chimed_lit.modules.optim import WarmupCosine, optimizer_and_schedule
from chimed_lit.modules.sharding import ShardedModelHook


def score_sequences(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    position_ids: torch.Tensor | None = None,
    ends: torch.Tensor | None = None,
) -> torch.Tensor:
    """Rewards (fp32) of right-padded rows, read at each row's last attended token; or, for a
    padding-free batch (`position_ids` restarting per sequence, no mask), one per sequence,
    read at the flat positions `ends` (`data.packing.pack_sequences`)."""
    backbone = getattr(model, model.base_model_prefix)
    head = getattr(model, "score", None)
    head = head if head is not None else getattr(model, "classifier", None)
    if head is None:
        raise TypeError(f"{type(model).__name__} has no `score` or `classifier` head")
    spans = spans_kwargs(model, position_ids, attention_mask)
    hidden = backbone(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        use_cache=False,
        **spans,
    ).last_hidden_state
    if ends is not None:
        pooled = hidden.flatten(0, 1)[ends]
    else:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        last = (positions * attention_mask.to(positions.dtype)).argmax(-1)
        pooled = hidden[torch.arange(input_ids.shape[0], device=hidden.device), last]
    return head(pooled).squeeze(-1).float()


class RewardModule(ShardedModelHook, L.LightningModule):
    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: WarmupCosine | None = None,
        margin: float | None = None,
        center_coef: float = 0.0,
        stage: str = "reward",
    ):
        super().__init__()
        self.model = model
        self.optimizer_fn = optimizer or partial(torch.optim.AdamW, lr=1e-5)
        self.scheduler = scheduler or WarmupCosine()
        self.margin, self.center_coef, self.stage = margin, center_coef, stage
        self.val_accuracy, self.val_margin = MeanMetric(), MeanMetric()
        self.val_rewards = CatMetric()
        self.val_length_corr = PearsonCorrCoef()

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """Rewards of every sequence: chosen and rejected in one pass (padded or packed)."""
        return score_sequences(
            self.model,
            batch["input_ids"],
            batch.get("attention_mask"),
            position_ids=batch.get("position_ids"),
            ends=batch.get("ends"),
        )

    def _pair(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rewards = self(batch)
        n = int(batch["n_pairs"])
        return rewards, rewards[:n], rewards[n:]

    # 1. a training step: the pairwise loss on one batch of pairs
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        _, chosen, rejected = self._pair(batch)
        loss, stats = reward_pairwise_loss(chosen, rejected, self.margin, self.center_coef)
        n = int(batch["n_pairs"])
        self.log(f"{self.stage}/train_loss", loss, prog_bar=True, batch_size=n)
        self.log(f"{self.stage}/train_accuracy", stats["accuracy"], batch_size=n)
        self.log(f"{self.stage}/lr", self.optimizers().param_groups[0]["lr"], batch_size=n)
        return loss

    # 2. validation: accuracy and margin per pair, the reward distribution, the length probe
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        rewards, chosen, rejected = self._pair(batch)
        diff = chosen - rejected
        self.val_accuracy.update((diff > 0).float())
        self.val_margin.update(diff)
        self.val_rewards.update(rewards)
        self.val_length_corr.update(rewards, batch["response_lengths"].float())

    def on_validation_epoch_end(self) -> None:
        rewards = self.val_rewards.compute().flatten()
        mean, std = rewards.mean(), rewards.std(unbiased=False)
        s = self.stage
        self.log(f"{s}/accuracy", self.val_accuracy.compute(), prog_bar=True)
        self.log(f"{s}/margin", self.val_margin.compute())
        self.log(f"{s}/mean", mean)
        self.log(f"{s}/std", std)
        self.log(f"{s}/length_corr", self.val_length_corr.compute())
        if not self.trainer.sanity_checking:
            self.set_normalisation(float(mean), float(std))
        for metric in (self.val_accuracy, self.val_margin, self.val_rewards, self.val_length_corr):
            metric.reset()

    def set_normalisation(self, mean: float, std: float) -> None:
        """Store the reward scale in the model config, so `save_pretrained` exports it."""
        self.model.config.reward_mean = mean
        self.model.config.reward_std = std

    # 3. optimizer and schedule
    def configure_optimizers(self) -> dict[str, Any]:
        optimizer, schedule = optimizer_and_schedule(
            self.model, self.optimizer_fn, self.scheduler, self.trainer
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
