"""REINFORCE++ (`stage.algorithm=reinforce_pp`, Hu 2025, "REINFORCE++: A Simple and Efficient
Approach for Aligning Large Language Models", arXiv 2501.03262): a critic-free baseline with
global normalisation, here the "REINFORCE++-baseline" variant for groups: the group's mean
reward is subtracted, then advantages are whitened over the whole batch (not per group, which
the paper argues overfits small groups); token-level loss, the KL as a k3 loss term off by
default."""

from __future__ import annotations

from chimed_lit.stages.grpo import GRPO


class ReinforcePP(GRPO):
    PRESET = {
        **GRPO.PRESET,
        "advantage": "reinforce_pp",
        "aggregation": "token_mean",
        "kl_coef": 0.0,
    }


ALGORITHM = ReinforcePP
