"""Dr. GRPO (`stage.algorithm=dr_grpo`, Liu et al. 2025, "Understanding R1-Zero-Like Training:
A Critical Perspective", section 3.1): GRPO without its two biases. Advantages are the reward
minus the group mean (no division by the group's std, which favours groups that are nearly all
right or all wrong), and token losses are summed per response and divided by a constant
(`max_tokens`, default `max_new_tokens`) instead of each response's own length, which made long
wrong answers cheap. No KL term (the paper's setting)."""

from __future__ import annotations

from chimed_lit.stages.grpo import GRPO


class DrGRPO(GRPO):
    CONSTANT_NORMALISER = True
    PRESET = {
        **GRPO.PRESET,
        "advantage": "dr_grpo",
        "aggregation": "seq_mean_token_sum",
        "kl_coef": 0.0,
    }


ALGORITHM = DrGRPO
