"""DAPO (`stage.algorithm=dapo`, Yu et al. 2025, "DAPO: An Open-Source LLM Reinforcement
Learning System at Scale", section 3): group-normalised advantages with four changes to GRPO:
clip-higher (`clip_low` 0.2, `clip_high` 0.28, eq. 10), dynamic sampling (groups whose rewards
all agree are dropped and the batch refilled, eq. 11), the token-level loss (every token of the
batch weighs the same, eq. 12) and the soft overlong penalty (eq. 13, over the last quarter of
`max_new_tokens` unless `stage.grpo.overlong.buffer` says otherwise). No KL term."""

from __future__ import annotations

from chimed_lit.stages.grpo import GRPO


class DAPO(GRPO):
    PRESET = {
        **GRPO.PRESET,
        "aggregation": "token_mean",
        "clip_low": 0.2,
        "clip_high": 0.28,
        "kl_coef": 0.0,
        "dynamic_sampling": True,
        "overlong": {"mode": "soft", "buffer": None},
    }


ALGORITHM = DAPO
