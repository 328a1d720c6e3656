"""GSPO (`stage.algorithm=gspo`, Zheng et al. 2025, "Group Sequence Policy Optimization",
eq. 5-7): the importance ratio of a whole response, the geometric mean of its token ratios
(exp of the mean token log-ratio), clipped per response, with group-normalised advantages.
Sequence ratios sit much closer to 1 than token ratios, so the clip range is the paper's
(3e-4, 4e-4). No KL term (the paper's setting)."""

from __future__ import annotations

from chimed_lit.stages.grpo import GRPO


class GSPO(GRPO):
    PRESET = {
        **GRPO.PRESET,
        "ratio_level": "sequence",
        "aggregation": "seq_mean_token_mean",
        "clip_low": 3.0e-4,
        "clip_high": 4.0e-4,
        "kl_coef": 0.0,
    }


ALGORITHM = GSPO
