"""`CausalLMModule`: next-token training, the machinery pre-training and SFT share.

Knobs:
- `optimizer`: a partial optimizer (AdamW by default) whose `weight_decay` applies to matrices
  only; norms and biases are never decayed.
- `scheduler`: `WarmupCosine` (warmup steps or ratio, cosine to a minimum ratio), stepped per
  optimizer step over `trainer.estimated_stepping_batches`.
- `stage`: the metric namespace (`pretrain/train_loss`, `pretrain/val_ppl`, ...).
- `loss_chunk`: compute the LM head and loss this many tokens at a time, never holding the
  `[tokens, vocab]` logits (`losses/chunked.py`; a memory switch for large vocabularies). None:
  the plain path. Models whose head is not a plain unsharded linear keep the plain path.
Gradient clipping, accumulation and precision are the Trainer's (`trainer.gradient_clip_val`,
`trainer.accumulate_grad_batches`, `trainer.precision`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torchmetrics import SumMetric

from chimed_lit.losses.causal_lm import causal_lm_loss
from chimed_lit.losses.chunked import chunked_causal_lm_loss, plain_head
from chimed_lit.models.document_attention import spans_kwargs
from chimed_lit.modules.optim import WarmupCosine, optimizer_and_schedule
from chimed_lit.modules.sharding import ShardedModelHook


class CausalLMModule(ShardedModelHook, L.LightningModule):
    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: WarmupCosine | None = None,
        stage: str = "pretrain",
        loss_chunk: int | None = None,
    ):
        super().__init__()
        self.model = model
        self.optimizer_fn, self.scheduler = optimizer, scheduler or WarmupCosine()
        self.stage, self.loss_chunk = stage, loss_chunk
        self.val_loss_sum, self.val_tokens = SumMetric(), SumMetric()

    def _inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        inputs = {
            k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "position_ids")
        }
        spans = spans_kwargs(self.model, inputs.get("position_ids"), inputs.get("attention_mask"))
        return {**inputs, "use_cache": False, **spans}

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(**self._inputs(batch)).logits

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        """Next-token loss and its stats: through the chunked head when `loss_chunk` is set
        and the model's head allows it, else from the full logits."""
        head = plain_head(self.model) if self.loss_chunk else None
        if head is None:
            return causal_lm_loss(self(batch), batch["labels"])
        hidden = self.model.get_decoder()(**self._inputs(batch)).last_hidden_state
        return chunked_causal_lm_loss(hidden, head.weight, batch["labels"], self.loss_chunk)

    # 1. a training step: next-token loss on the target tokens
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, stats = self.loss(batch)
        self.log(f"{self.stage}/train_loss", loss, prog_bar=True)
        self.log(f"{self.stage}/lr", self.optimizers().param_groups[0]["lr"])
        self.log(f"{self.stage}/train_tokens", stats["n_tokens"].float(), reduce_fx="sum")
        return loss

    # 2. validation: loss averaged per token over the whole set, and its perplexity
    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        _, stats = self.loss(batch)
        self.val_loss_sum.update(stats["loss_sum"])
        self.val_tokens.update(stats["n_tokens"].float())

    def on_validation_epoch_end(self) -> None:
        loss = self.val_loss_sum.compute() / self.val_tokens.compute().clamp(min=1)
        self.log(f"{self.stage}/val_loss", loss, prog_bar=True)
        self.log(f"{self.stage}/val_ppl", torch.exp(loss.clamp(max=50)))
        self.val_loss_sum.reset()
        self.val_tokens.reset()

    # 3. optimizer and schedule
    def configure_optimizers(self) -> dict[str, Any]:
        optimizer, schedule = optimizer_and_schedule(
            self.model, self.optimizer_fn, self.scheduler, self.trainer
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
