"""RLOO (`stage.algorithm=rloo`, Ahmadian et al. 2024, "Back to Basics: Revisiting
REINFORCE-Style Optimization for Learning from Human Feedback in LLMs", section 3.2): each
response's baseline is the mean reward of the other G - 1 responses to its prompt (an unbiased
baseline with no critic), with the clipped ratio for several updates per rollout and the loss
summed per response (sequence-level REINFORCE). No KL term unless `stage.grpo.kl_coef` sets one."""

from __future__ import annotations

from chimed_lit.stages.grpo import GRPO


class RLOO(GRPO):
    PRESET = {
        **GRPO.PRESET,
        "advantage": "rloo",
        "aggregation": "seq_mean_token_sum",
        "kl_coef": 0.0,
    }


ALGORITHM = RLOO
