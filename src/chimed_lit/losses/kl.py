"""Per-token KL estimators and KL-coefficient controllers for RLHF.

The RL objective penalises the policy for drifting from the frozen SFT reference. Only the
log-probs of the *sampled* tokens are available, so KL(policy || ref) is estimated per token
from samples ``x ~ policy`` (J. Schulman, "Approximating KL Divergence", 2020). With
``log_ratio = logp - ref_logp`` (= -log r, where r = p_ref(x) / p_policy(x)):

* k1 = log_ratio                       unbiased, high variance, can be negative per token
* k2 = 0.5 * log_ratio**2              biased, low variance, always >= 0
* k3 = (r - 1) - log r                 unbiased, low variance, always >= 0
     = exp(-log_ratio) - 1 + log_ratio
* low_var = k3 with log r clamped to [-20, 20] and the result to [-10, 10] (verl's
  "low_var_kl"): the same value near the reference, bounded far from it
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

__all__ = [
    "AdaptiveKLController",
    "FixedKLController",
    "KLKind",
    "KL_ESTIMATORS",
    "kl_k1",
    "kl_k2",
    "kl_k3",
    "kl_low_var",
    "kl_penalty",
]

KLKind = Literal["k1", "k2", "k3", "low_var"]


def kl_k1(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k1 = log p(x) - log p_ref(x): the naive unbiased estimator."""
    return logp - ref_logp


def kl_k2(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k2 = 0.5 * (log ratio)^2: biased but low-variance and non-negative."""
    return 0.5 * (logp - ref_logp) ** 2


def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k3 = (r - 1) - log r with r = p_ref/p: unbiased, low-variance, non-negative.

    Non-negative because log is concave (log r <= r - 1). ``expm1`` keeps it accurate when
    the two distributions are close (r ~ 1), where the naive form cancels catastrophically.
    """
    log_r = ref_logp - logp
    return torch.expm1(log_r) - log_r


def kl_low_var(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k3 made safe far from the reference: the GRPO KL loss term's "low-variance" estimator.

    GRPO (Shao et al. 2024, DeepSeekMath eq. 4) penalises ``D_KL = r - log r - 1`` with
    ``r = p_ref / p``, i.e. k3. This is that estimator bounded as verl's ``low_var_kl``:
    ``log r = clamp(ref_logp - logp, -20, 20)``, then the estimate is clamped to
    ``[-10, 10]`` (k3 >= 0, so only the upper bound can bind). Within the bounds it equals
    ``kl_k3``; where a bound binds its gradient is 0, so one token the policy has moved far
    from the reference (e.g. ``log r = 3`` gives k3 = 16.09 -> 10) cannot dominate the loss
    or blow up through ``exp``.
    """
    log_r = torch.clamp(ref_logp - logp, min=-20.0, max=20.0)
    return torch.clamp(torch.expm1(log_r) - log_r, min=-10.0, max=10.0)


_ESTIMATORS = {"k1": kl_k1, "k2": kl_k2, "k3": kl_k3, "low_var": kl_low_var}
KL_ESTIMATORS: tuple[str, ...] = tuple(_ESTIMATORS)


def kl_penalty(logp: Tensor, ref_logp: Tensor, kind: KLKind = "k1") -> Tensor:
    """Per-token KL(policy || ref) estimate of the given ``kind`` (same shape as inputs):
    one of ``k1``, ``k2``, ``k3``, ``low_var``."""
    try:
        fn = _ESTIMATORS[kind]
    except KeyError:
        raise ValueError(
            f"unknown KL estimator {kind!r}; expected one of {', '.join(KL_ESTIMATORS)}"
        ) from None
    return fn(logp, ref_logp)


def _to_float(v: float | Tensor) -> float:
    return float(v.detach().item()) if isinstance(v, Tensor) else float(v)


class FixedKLController:
    """Constant KL coefficient beta. ``update`` is a no-op, kept for a uniform interface."""

    def __init__(self, kl_coef: float) -> None:
        if kl_coef < 0:
            raise ValueError(f"kl_coef must be >= 0, got {kl_coef}")
        self.value = float(kl_coef)

    def update(self, current_kl: float | Tensor, n_steps: int) -> float:
        """Ignore the observation; return the (unchanged) coefficient."""
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = float(state["value"])


class AdaptiveKLController:
    """Proportional controller steering the observed KL towards ``target``.

    Ziegler et al. 2019, "Fine-Tuning Language Models from Human Preferences", eq. 2:
        e_t  = clip(KL_t / KL_target - 1, -0.2, 0.2)
        beta <- beta * (1 + K_beta * e_t),   K_beta = n_steps / horizon
    The clip bounds the per-update change, so one noisy KL estimate cannot blow up beta.
    ``n_steps`` is the number of samples (episodes) consumed since the previous update.
    """

    def __init__(self, init_kl_coef: float, target: float, horizon: float) -> None:
        if init_kl_coef < 0:
            raise ValueError(f"init_kl_coef must be >= 0, got {init_kl_coef}")
        if target <= 0:
            raise ValueError(f"target must be > 0, got {target}")
        if horizon <= 0:
            raise ValueError(f"horizon must be > 0, got {horizon}")
        self.value = float(init_kl_coef)
        self.target = float(target)
        self.horizon = float(horizon)

    def update(self, current_kl: float | Tensor, n_steps: int) -> float:
        """Apply one controller step given the measured KL; return the new coefficient."""
        error = min(max(_to_float(current_kl) / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon
        return self.value

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint the learned coefficient (target/horizon are saved for reference)."""
        return {"value": self.value, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore only ``value``: target/horizon come from the current config on resume."""
        self.value = float(state["value"])
