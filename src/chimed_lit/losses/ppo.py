"""PPO clipped policy/value losses and masked entropy.

All means are token-level: every valid response token in the batch has equal weight
(``masked_mean`` over the whole ``[batch, T]`` tensor).
"""

from __future__ import annotations

import torch
from torch import Tensor

from chimed_lit.losses.masked import masked_mean

__all__ = ["entropy_from_logits", "ppo_policy_loss", "ppo_value_loss"]


def ppo_policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_range: float,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped surrogate loss, Schulman et al. 2017 (PPO) eq. 7, negated for minimisation.

    loss = mean(max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps))), ratio = exp(logp - old).
    Taking the pessimistic (max-loss) branch removes any incentive to push the ratio beyond
    the trust region. ``old_logp`` and ``advantages`` are treated as constants (detached).

    Stats: ``policy_loss``; ``clipfrac`` (fraction of tokens where the clipped branch is the
    active one, i.e. its gradient is 0); ``approx_kl`` = 0.5 * mean((logp - old_logp)^2), the
    k2 estimator of KL(old || new) (cheap, non-negative, accurate for small steps);
    ``ratio_mean``.
    """
    if clip_range <= 0:
        raise ValueError(f"clip_range must be > 0, got {clip_range}")
    advantages = advantages.detach()
    log_ratio = logp - old_logp.detach()
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {
            "policy_loss": loss.detach(),
            "clipfrac": masked_mean((clipped > unclipped).to(logp.dtype), mask),
            "approx_kl": masked_mean(0.5 * log_ratio**2, mask),
            "ratio_mean": masked_mean(ratio, mask),
        }
    return loss, stats


def ppo_value_loss(
    values: Tensor,
    old_values: Tensor,
    returns: Tensor,
    mask: Tensor,
    clip_range_value: float,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped value loss: 0.5 * mean(max((V - R)^2, (V_clip - R)^2)).

    ``V_clip = V_old + clip(V - V_old, -c, c)`` keeps the critic from moving far from the
    values used to compute the advantages (the PPO2 baselines formulation). ``old_values``
    and ``returns`` are detached targets.

    Stats: ``value_loss``; ``vf_clipfrac`` (fraction of tokens where the clipped error is
    the larger, so the gradient is cut); ``value_mean``.
    """
    if clip_range_value <= 0:
        raise ValueError(f"clip_range_value must be > 0, got {clip_range_value}")
    old_values = old_values.detach()
    returns = returns.detach()
    values_clipped = old_values + torch.clamp(
        values - old_values, -clip_range_value, clip_range_value
    )
    err_unclipped = (values - returns) ** 2
    err_clipped = (values_clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(err_unclipped, err_clipped), mask)
    with torch.no_grad():
        stats = {
            "value_loss": loss.detach(),
            "vf_clipfrac": masked_mean((err_clipped > err_unclipped).to(values.dtype), mask),
            "value_mean": masked_mean(values, mask),
        }
    return loss, stats


def entropy_from_logits(logits: Tensor, mask: Tensor) -> Tensor:
    """Masked token-level mean entropy of the softmax over the last dim of ``logits``.

    H = logsumexp(z) - sum softmax(z) * z, which avoids 0 * log 0. Computed in float32 (a
    no-op for float32 inputs) since bf16 loses precision in the vocabulary-wide sum.
    ``logits`` is ``[batch, T, vocab]``, ``mask`` is ``[batch, T]``. Differentiable.
    """
    z = logits.float()
    probs = torch.softmax(z, dim=-1)
    entropy = torch.logsumexp(z, dim=-1) - (probs * z).sum(dim=-1)
    return masked_mean(entropy, mask)
