"""Pairwise preference losses: Bradley-Terry reward model and the DPO family.

Inputs are per-example tensors of shape ``[batch]``; every loss is a batch mean and returns
``(loss, stats)`` with detached scalar stats. Accuracies use a strict ``>`` (ties count as
wrong), so an untrained model starting at all-equal rewards reports 0 accuracy, not 1.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "DPOLossType",
    "dpo_loss",
    "log1mexp",
    "orpo_loss",
    "reward_pairwise_loss",
    "simpo_loss",
]

DPOLossType = Literal["sigmoid", "ipo", "hinge"]


def _pair_stats(chosen: Tensor, rejected: Tensor) -> dict[str, Tensor]:
    """Implicit-reward stats shared by the DPO-family losses."""
    chosen, rejected = chosen.detach(), rejected.detach()
    return {
        "reward_chosen": chosen.mean(),
        "reward_rejected": rejected.mean(),
        "reward_margin": (chosen - rejected).mean(),
        "accuracy": (chosen > rejected).float().mean(),
    }


def reward_pairwise_loss(
    r_chosen: Tensor,
    r_rejected: Tensor,
    margin: Tensor | float | None = None,
    center_coef: float = 0.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Bradley-Terry pairwise loss for the reward model, with optional margin and centering.

    loss = mean(-log sigmoid(r_c - r_r - m)) + center_coef * mean((r_c + r_r)^2)

    The margin ``m`` (Touvron et al. 2023, Llama 2, eq. 2) asks for a larger reward gap on
    pairs the annotators separated more clearly. The centering term (Eisenstein et al. 2023,
    "Helping or Herding") pins the otherwise shift-invariant reward scale near 0, which keeps
    the PPO reward well-conditioned.

    Stats: ``loss``, ``bt_loss``, ``center_loss``, ``accuracy`` (r_c > r_r, margin ignored),
    ``margin_mean`` (mean r_c - r_r), ``chosen_mean``, ``rejected_mean``.
    """
    if r_chosen.shape != r_rejected.shape:
        raise ValueError(
            f"r_chosen {tuple(r_chosen.shape)} and r_rejected {tuple(r_rejected.shape)} differ"
        )
    diff = r_chosen - r_rejected
    logits = diff if margin is None else diff - margin
    bt_loss = -F.logsigmoid(logits).mean()
    center_loss = ((r_chosen + r_rejected) ** 2).mean()
    loss = bt_loss + center_coef * center_loss if center_coef else bt_loss
    with torch.no_grad():
        stats = {
            "loss": loss.detach(),
            "bt_loss": bt_loss.detach(),
            "center_loss": center_loss.detach(),
            "accuracy": (diff > 0).float().mean(),
            "margin_mean": diff.mean(),
            "chosen_mean": r_chosen.mean(),
            "rejected_mean": r_rejected.mean(),
        }
    return loss, stats


def dpo_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    beta: float,
    loss_type: DPOLossType = "sigmoid",
    label_smoothing: float = 0.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """DPO-family loss on sequence log-probs, with h = (pi_c - pi_r) - (ref_c - ref_r).

    * ``sigmoid``: Rafailov et al. 2023, eq. 7: -log sigmoid(beta * h). With
      ``label_smoothing`` eps (conservative DPO) it becomes the cross-entropy against soft
      labels: -(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h).
    * ``ipo``: Azar et al. 2023, eq. 17: (h - 1/(2 beta))^2. Regresses h to a finite target
      instead of pushing it to infinity; the caller should pass length-averaged log-probs.
    * ``hinge``: SLiC-HF (Zhao et al. 2023) with reference normalisation: relu(1 - beta h).

    Log-probs are summed per sequence (``[batch]``); reference ones are detached.
    Stats: ``loss``, implicit rewards beta * (pi - ref) as ``reward_chosen`` /
    ``reward_rejected``, ``reward_margin``, ``accuracy``.
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    if label_smoothing and loss_type != "sigmoid":
        raise ValueError("label_smoothing is only defined for loss_type='sigmoid'")
    ref_chosen_logps = ref_chosen_logps.detach()
    ref_rejected_logps = ref_rejected_logps.detach()
    chosen_logratio = policy_chosen_logps - ref_chosen_logps
    rejected_logratio = policy_rejected_logps - ref_rejected_logps
    h = chosen_logratio - rejected_logratio
    if loss_type == "sigmoid":
        losses = -(1.0 - label_smoothing) * F.logsigmoid(beta * h)
        if label_smoothing:
            losses = losses - label_smoothing * F.logsigmoid(-beta * h)
    elif loss_type == "ipo":
        losses = (h - 1.0 / (2.0 * beta)) ** 2
    elif loss_type == "hinge":
        losses = torch.relu(1.0 - beta * h)
    else:
        raise ValueError(f"unknown DPO loss_type {loss_type!r}; expected sigmoid, ipo or hinge")
    loss = losses.mean()
    stats = {"loss": loss.detach(), **_pair_stats(beta * chosen_logratio, beta * rejected_logratio)}
    return loss, stats


def simpo_loss(
    chosen_avg_logps: Tensor,
    rejected_avg_logps: Tensor,
    beta: float,
    gamma: float,
) -> tuple[Tensor, dict[str, Tensor]]:
    """SimPO, Meng et al. 2024, eq. 6: -log sigmoid(beta * (c - r) - gamma).

    Reference-free: the implicit reward is the length-normalised log-prob beta * avg_logp,
    and ``gamma`` is the target reward margin (in reward units, not divided by beta).
    Stats: ``loss``, ``reward_chosen``, ``reward_rejected``, ``reward_margin``, ``accuracy``.
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    chosen_rewards = beta * chosen_avg_logps
    rejected_rewards = beta * rejected_avg_logps
    loss = -F.logsigmoid(chosen_rewards - rejected_rewards - gamma).mean()
    return loss, {"loss": loss.detach(), **_pair_stats(chosen_rewards, rejected_rewards)}


def log1mexp(x: Tensor) -> Tensor:
    """Stable log(1 - exp(x)) for x <= 0 (Maechler 2012): expm1 near 0, log1p far from it."""
    return torch.where(
        x > -0.6931471805599453,  # -log(2)
        torch.log(-torch.expm1(x)),
        torch.log1p(-torch.exp(x)),
    )


def orpo_loss(
    chosen_avg_logps: Tensor,
    rejected_avg_logps: Tensor,
    chosen_nll: Tensor,
    lam: float,
) -> tuple[Tensor, dict[str, Tensor]]:
    """ORPO, Hong et al. 2024: NLL(chosen) + lam * -log sigmoid(log odds ratio).

    odds(y) = p / (1 - p) with p = exp(avg log-prob), so
    log odds = a - log(1 - exp(a)), evaluated with ``log1mexp``. ``a`` is clamped just below 0
    because p = 1 has infinite odds. ``chosen_nll`` is the chosen response's (length-averaged)
    SFT loss, per example or already reduced; it is mean-reduced here.
    Stats: ``loss``, ``nll``, ``or_loss``, log-odds as ``reward_chosen`` / ``reward_rejected``,
    ``reward_margin`` (mean log odds ratio), ``accuracy``.
    """
    tiny = torch.finfo(chosen_avg_logps.dtype).eps
    a_c = chosen_avg_logps.clamp(max=-tiny)
    a_r = rejected_avg_logps.clamp(max=-tiny)
    log_odds_c = a_c - log1mexp(a_c)
    log_odds_r = a_r - log1mexp(a_r)
    or_loss = -F.logsigmoid(log_odds_c - log_odds_r).mean()
    nll = chosen_nll.mean()
    loss = nll + lam * or_loss
    stats = {
        "loss": loss.detach(),
        "nll": nll.detach(),
        "or_loss": or_loss.detach(),
        **_pair_stats(log_odds_c, log_odds_r),
    }
    return loss, stats
