"""Pure tensor math for the preference and RL stages (reward model, PPO, GRPO and DPO families).

No Lightning, transformers or I/O here: every function maps tensors to tensors, so each can be
unit-tested against hand-computed values and reused by any training loop.
"""

from chimed_lit.losses.advantages import (
    group_advantages,
    reinforce_pp_advantages,
    rloo_advantages,
)
from chimed_lit.losses.gae import compute_gae, token_rewards
from chimed_lit.losses.kl import (
    AdaptiveKLController,
    FixedKLController,
    kl_k1,
    kl_k2,
    kl_k3,
    kl_low_var,
    kl_penalty,
)
from chimed_lit.losses.masked import (
    masked_count,
    masked_mean,
    masked_sum,
    masked_var,
    masked_whiten,
)
from chimed_lit.losses.policy import aggregate, policy_loss
from chimed_lit.losses.ppo import entropy_from_logits, ppo_policy_loss, ppo_value_loss
from chimed_lit.losses.preference import (
    dpo_loss,
    log1mexp,
    orpo_loss,
    reward_pairwise_loss,
    simpo_loss,
)

__all__ = [
    "AdaptiveKLController",
    "FixedKLController",
    "aggregate",
    "compute_gae",
    "dpo_loss",
    "entropy_from_logits",
    "group_advantages",
    "kl_k1",
    "kl_k2",
    "kl_k3",
    "kl_low_var",
    "kl_penalty",
    "log1mexp",
    "masked_count",
    "masked_mean",
    "masked_sum",
    "masked_var",
    "masked_whiten",
    "orpo_loss",
    "policy_loss",
    "ppo_policy_loss",
    "ppo_value_loss",
    "reinforce_pp_advantages",
    "reward_pairwise_loss",
    "rloo_advantages",
    "simpo_loss",
    "token_rewards",
]
