"""Token-level language-model losses as pure functions of tensors, returning `(loss, stats)`."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Mean next-token cross-entropy over target positions (labels != -100).

    `labels` are aligned with the inputs (as transformers expects): position t predicts
    labels[t+1]. Stats hold the summed loss and the token count so that validation can be
    averaged per token across batches of different sizes, not per batch.
    """
    # the labels move one column left (the last position predicts nothing), not the logits:
    # slicing [batch, T, vocab] logits would copy the largest tensor of the step
    shift_labels = F.pad(labels[:, 1:], (0, 1), value=IGNORE)
    loss_sum = F.cross_entropy(
        logits.float().reshape(-1, logits.size(-1)),
        shift_labels.reshape(-1),
        ignore_index=IGNORE,
        reduction="sum",
    )
    n_tokens = (shift_labels != IGNORE).sum()
    loss = loss_sum / n_tokens.clamp(min=1)
    return loss, {"loss_sum": loss_sum.detach(), "n_tokens": n_tokens}


def per_token_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p(labels[t+1] | prefix) at each position t, 0 where ignored; shape [batch, T-1]."""
    shift_labels = labels[:, 1:]
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    safe = shift_labels.clamp(min=0)
    out = logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return out * (shift_labels != IGNORE)
