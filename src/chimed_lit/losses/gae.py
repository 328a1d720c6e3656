"""Generalized Advantage Estimation and per-token RLHF rewards.

Tensors are ``[batch, T]`` over response tokens. ``mask`` marks valid response tokens; each
row's valid tokens are expected to form one contiguous run (right padding, or left offset).
A masked position ends the episode: the value bootstrapped after a row's last valid token
is 0, and nothing at or beyond padding can leak into earlier advantages.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["compute_gae", "token_rewards"]


def compute_gae(
    rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float
) -> tuple[Tensor, Tensor]:
    """Return ``(advantages, returns)`` via GAE(gamma, lambda).

    Schulman et al. 2016, "High-Dimensional Continuous Control Using GAE", eq. 16:
        delta_t = r_t + gamma * V(s_{t+1}) - V(s_t)
        A_t     = sum_l (gamma * lam)^l * delta_{t+l}     (computed backwards recursively)
    ``returns = A + V`` are the value-function targets. Inputs are detached (advantages and
    returns are fixed targets for the PPO epochs) and both outputs are 0 outside ``mask``.
    """
    if rewards.shape != values.shape or rewards.shape != mask.shape or rewards.dim() != 2:
        raise ValueError(
            "rewards, values and mask must all be [batch, T]; got "
            f"{tuple(rewards.shape)}, {tuple(values.shape)}, {tuple(mask.shape)}"
        )
    valid = mask.bool()
    zero = torch.zeros((), dtype=values.dtype, device=values.device)
    # where() (not multiply) so NaN/inf in padded slots cannot propagate.
    r = torch.where(valid, rewards.detach().to(values.dtype), zero)
    v = torch.where(valid, values.detach(), zero)
    m = valid.to(values.dtype)

    batch, steps = r.shape
    advantages = torch.zeros_like(v)
    last_gae = torch.zeros(batch, dtype=v.dtype, device=v.device)
    next_value = torch.zeros_like(last_gae)
    next_valid = torch.zeros_like(last_gae)
    for t in range(steps - 1, -1, -1):
        # Bootstrap/continue only if the next position is still part of the same episode.
        delta = r[:, t] + gamma * next_value * next_valid - v[:, t]
        last_gae = (delta + gamma * lam * next_valid * last_gae) * m[:, t]
        advantages[:, t] = last_gae
        next_value = v[:, t]
        next_valid = m[:, t]
    returns = torch.where(valid, advantages + v, zero)
    return advantages, returns


def token_rewards(score: Tensor, kl: Tensor, kl_coef: float | Tensor, mask: Tensor) -> Tensor:
    """Per-token rewards: ``-kl_coef * kl`` on every valid token, ``score`` added on the last.

    The KL-shaped reward of Ziegler et al. 2019 / InstructGPT: the reward model scores the
    whole sequence, so its scalar lands on the final token while the KL penalty is dense.
    ``score`` is ``[batch]``; ``kl`` and ``mask`` are ``[batch, T]``. Output is 0 outside the
    mask. Raises ``ValueError`` if a row has no valid token (its score would be dropped).
    """
    if kl.shape != mask.shape or kl.dim() != 2:
        raise ValueError(
            f"kl and mask must be [batch, T]; got {tuple(kl.shape)}, {tuple(mask.shape)}"
        )
    if score.shape != (kl.shape[0],):
        raise ValueError(f"score must be [batch]={kl.shape[0]}, got {tuple(score.shape)}")
    valid = mask.bool()
    if not bool(valid.any(dim=1).all()):
        raise ValueError("every row needs at least one valid response token to carry its score")
    zero = torch.zeros((), dtype=kl.dtype, device=kl.device)
    rewards = torch.where(valid, -kl_coef * kl, zero)
    positions = torch.arange(1, kl.shape[1] + 1, device=kl.device)
    last = (valid * positions).amax(dim=1) - 1
    rows = torch.arange(kl.shape[0], device=kl.device)
    rewards[rows, last] = rewards[rows, last] + score.to(rewards.dtype)
    return rewards
