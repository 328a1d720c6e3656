"""Which stages a GRPO run needs: the reward stage only when a reward is the reward model."""

from __future__ import annotations

import pytest

from chimed_lit.run.compose import compose_stage, composing
from chimed_lit.run.pipeline import direct_needs


@pytest.mark.parametrize(
    ("algorithm", "reward", "needs"),
    [
        ("grpo", "mcq", ["sft"]),
        ("dapo", "mcq+format", ["sft"]),
        ("grpo", "reward_model+format", ["sft", "reward"]),
        ("rloo", "reward_model", ["sft", "reward"]),
        ("ppo", "reward_model", ["sft", "reward"]),
    ],
)
def test_reward_stage_runs_only_for_the_reward_model(tmp_path, algorithm, reward, needs):
    with composing():
        cfg = compose_stage(
            "rlhf", [f"stage.algorithm={algorithm}", f"stage.reward={reward}"], str(tmp_path), True
        )
    assert direct_needs(cfg) == needs


def test_a_given_policy_replaces_the_sft_stage(tmp_path):
    with composing():
        cfg = compose_stage(
            "rlhf",
            ["stage.algorithm=grpo", "stage.reward=mcq", "stage.policy=/x"],
            str(tmp_path),
            True,
        )
    assert direct_needs(cfg) == []
