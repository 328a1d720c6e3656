"""Critic-free advantage estimators for the GRPO family (one scalar advantage per response).

Every estimator reads ``rewards`` of shape ``[N]`` laid out prompt-major: the ``group_size``
(G) responses sampled for prompt 0 are rows ``0..G-1``, those of prompt 1 rows ``G..2G-1``, and
so on. The baseline is the group's own rewards, so no value network is needed. The training
module broadcasts each response's advantage over its tokens.

All three return ``(advantages [N], stats)`` with the same stats keys, so logging does not
depend on the estimator:

* ``zero_std_fraction``: fraction of groups whose rewards all agree exactly (every response
  right, or every one wrong). Such a group carries no learning signal: its advantages are
  exactly 0 under every estimator here, so its responses add nothing to the policy gradient.
* ``reward_std_mean``: mean over groups of the in-group (unbiased) reward standard deviation.

Advantages are constants of the policy update: rewards are detached, and ints or low-precision
floats are promoted to float32 (float64 stays float64). A non-finite reward raises
``ValueError`` naming the rows (one host sync per rollout batch), since one NaN would silently
poison its whole group and then the loss.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "ADVANTAGE_SCALES",
    "AdvantageScale",
    "group_advantages",
    "reinforce_pp_advantages",
    "rloo_advantages",
]

AdvantageScale = Literal["std", "none"]
ADVANTAGE_SCALES: tuple[str, ...] = ("std", "none")


def _grouped(rewards: Tensor, group_size: int, who: str) -> Tensor:
    """``rewards [N]`` as a detached float ``[N // G, G]`` view, after validating the layout."""
    if isinstance(group_size, bool) or not isinstance(group_size, int):
        raise ValueError(f"{who}: group_size must be an int, got {group_size!r}")
    if group_size < 2:
        raise ValueError(
            f"{who}: group_size must be >= 2 (the baseline is the other responses of the "
            f"same prompt), got {group_size}"
        )
    if rewards.dim() != 1:
        raise ValueError(f"{who}: rewards must be 1-D [N], got shape {tuple(rewards.shape)}")
    n = rewards.numel()
    if n == 0:
        raise ValueError(f"{who}: rewards is empty")
    if n % group_size != 0:
        raise ValueError(
            f"{who}: {n} rewards do not split into groups of {group_size} "
            f"({n} % {group_size} = {n % group_size}); rewards must be prompt-major, "
            "group_size responses per prompt"
        )
    dtype = torch.promote_types(rewards.dtype, torch.float32)
    r = rewards.detach().to(dtype)
    bad = ~torch.isfinite(r)
    if bool(bad.any()):
        rows = bad.nonzero().flatten().tolist()
        shown = ", ".join(str(i) for i in rows[:8]) + (", ..." if len(rows) > 8 else "")
        raise ValueError(f"{who}: non-finite reward at row(s) {shown}")
    return r.view(n // group_size, group_size)


def _degenerate(grouped: Tensor) -> Tensor:
    """[P] bool: the group's rewards all agree exactly (no spread, no signal)."""
    return grouped.amax(dim=1) == grouped.amin(dim=1)


def _stats(grouped: Tensor, degenerate: Tensor) -> dict[str, Tensor]:
    return {
        "zero_std_fraction": degenerate.to(grouped.dtype).mean(),
        "reward_std_mean": grouped.std(dim=1).mean(),  # unbiased (Bessel), as torch.std
    }


def _centred(grouped: Tensor, degenerate: Tensor) -> Tensor:
    """r - mean_group(r), exactly 0 for degenerate groups (see ``_zero_degenerate``)."""
    return _zero_degenerate(grouped - grouped.mean(dim=1, keepdim=True), degenerate)


def _zero_degenerate(adv: Tensor, degenerate: Tensor) -> Tensor:
    """``adv [P, G]`` with the rows of degenerate groups set to exactly 0.

    The mean of G equal floats need not round back to that float, so ``r - mean`` alone can
    leave a ~1e-8 residue that a division by a tiny std would blow up, and with ``eps=0`` the
    division is 0/0. Selecting 0 makes "no spread, no signal" exact.
    """
    return torch.where(degenerate[:, None], torch.zeros_like(adv), adv)


def group_advantages(
    rewards: Tensor,
    group_size: int,
    *,
    scale: AdvantageScale = "std",
    eps: float = 1e-6,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Group-relative advantages of GRPO, or of Dr. GRPO with ``scale="none"``.

    ``scale="std"``: GRPO, Shao et al. 2024 ("DeepSeekMath", section 4.1.2, outcome
    supervision, the advantage used in the objective of eq. 3):

        A_i = (r_i - mean_group(r)) / (std_group(r) + eps)

    ``std`` is the *unbiased* (Bessel-corrected, divide by G - 1) sample standard deviation,
    torch's default, as TRL's GRPOTrainer and verl's GRPO estimator compute it. For a group
    of 4 rewards [1, 0, 0, 1]: mean 0.5, std sqrt(1/3), A = +-0.5 * sqrt(3) = +-0.8660.

    ``scale="none"``: Dr. GRPO, Liu et al. 2025 ("Understanding R1-Zero-Like Training: A
    Critical Perspective", section 3.2), which drops the division by the group std (it
    up-weights questions that are nearly all right or all wrong):

        A_i = r_i - mean_group(r)

    A degenerate group (all rewards equal) gets exactly 0 under both scales. ``group_size``
    must be >= 2 and divide ``N``; otherwise ``ValueError``. Returns ``(advantages [N],
    stats)``; see the module docstring for the stats.
    """
    if scale not in ADVANTAGE_SCALES:
        raise ValueError(
            f"group_advantages: scale must be one of {ADVANTAGE_SCALES}, got {scale!r}"
        )
    if eps < 0:
        raise ValueError(f"group_advantages: eps must be >= 0, got {eps}")
    grouped = _grouped(rewards, group_size, "group_advantages")
    degenerate = _degenerate(grouped)
    adv = _centred(grouped, degenerate)
    if scale == "std":
        adv = _zero_degenerate(adv / (grouped.std(dim=1, keepdim=True) + eps), degenerate)
    return adv.reshape(-1), _stats(grouped, degenerate)


def rloo_advantages(rewards: Tensor, group_size: int) -> tuple[Tensor, dict[str, Tensor]]:
    """REINFORCE Leave-One-Out advantages, Ahmadian et al. 2024 ("Back to Basics: Revisiting
    REINFORCE Style Optimization for Learning from Human Feedback in LLMs", section 3, the
    RLOO estimator with k samples per prompt):

        A_i = r_i - 1/(G-1) * sum_{j != i} r_j  =  G/(G-1) * (r_i - mean_group(r))

    The baseline of each response excludes that response, so it is independent of it and the
    policy-gradient estimate stays unbiased. For rewards [1, 0, 0, 1]:
    A_0 = 1 - (0 + 0 + 1)/3 = 2/3, A_1 = 0 - (1 + 0 + 1)/3 = -2/3. ``group_size`` must be
    >= 2 (there is no "other" response otherwise) and divide ``N``; otherwise ``ValueError``.
    """
    grouped = _grouped(rewards, group_size, "rloo_advantages")
    degenerate = _degenerate(grouped)
    adv = _centred(grouped, degenerate) * (group_size / (group_size - 1))
    return adv.reshape(-1), _stats(grouped, degenerate)


def reinforce_pp_advantages(
    rewards: Tensor, group_size: int, *, eps: float = 1e-6
) -> tuple[Tensor, dict[str, Tensor]]:
    """REINFORCE++ with baseline ("REINFORCE++-baseline"), Hu et al. 2025 (arXiv 2501.03262,
    "REINFORCE++: ... Global Advantage Normalization", the group-sampling variant "REINFORCE++
    w/ Baseline" for k > 1 samples per prompt):

        A'_i = r_i - mean_group(r)                       (group-mean baseline)
        A_i  = A'_i / (std_batch(A') + eps)              (global normalisation)

    The standard deviation is taken over the whole batch of N responses (not per group, which
    is what distinguishes it from GRPO) and is unbiased (torch default). The paper's global
    normalisation also subtracts ``mean_batch(A')``; after the group-mean baseline that mean
    is exactly 0 in real arithmetic, so it is omitted here: subtracting its float round-off
    would give degenerate groups a spurious nonzero advantage.

    Variant note: this normalises over *responses*, one advantage each, as the paper's
    outcome-reward formulation states; verl's ``reinforce_plus_plus_baseline`` whitens the
    advantage broadcast over *tokens*, which weights each response's contribution to the std
    by its length. KL is not folded into the reward here (the module adds it as a loss term).

    For two groups [1, 0] and [1, 1]: A' = [0.5, -0.5, 0, 0], std_batch(A') = sqrt(1/6),
    A = [+-0.5 * sqrt(6), 0, 0] = [1.2247, -1.2247, 0, 0].
    """
    if eps < 0:
        raise ValueError(f"reinforce_pp_advantages: eps must be >= 0, got {eps}")
    grouped = _grouped(rewards, group_size, "reinforce_pp_advantages")
    degenerate = _degenerate(grouped)
    centred = _centred(grouped, degenerate)
    adv = _zero_degenerate(centred / (centred.std() + eps), degenerate)
    return adv.reshape(-1), _stats(grouped, degenerate)
