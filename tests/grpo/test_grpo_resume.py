"""kill -9 in the middle of a GRPO-family update, `resume=true`: the same run. DAPO is the
hardest member to resume: its dynamic-sampling buffer holds groups sampled before the
checkpoint, and its refills draw from the sampler and RNG (`modules/rollout_groups.py`)."""

from __future__ import annotations

import pytest

from tests.grpo.conftest import grpo_args
from tests.reliability.conftest import assert_same_weights, metrics
from tests.reliability.test_kill_resume import kill_and_resume

pytestmark = pytest.mark.slow


def test_dapo_killed_mid_update_resumes_to_the_same_run(run_cli, tiny_models, tmp_path):
    args = grpo_args(
        tiny_models["lm"],
        "dapo",
        "trainer.max_steps=4",
        "checkpoint.every_n_steps=1",
        "stage.grpo.minibatch_size=8",  # two updates per step: the kill lands between them
    )
    straight, split = kill_and_resume(run_cli, tmp_path, args, kill_at=2)
    for key in ("rlhf/policy_loss", "rlhf/reward", "rlhf/trained_reward_std_mean"):
        want, got = metrics(straight, "rlhf", key), metrics(split, "rlhf", key)
        later = [s for s in want if s >= 2]
        assert later, want
        for step in later:
            assert got[step] == pytest.approx(want[step], abs=1e-6), (key, step)
    assert_same_weights(straight / "rlhf" / "hf", split / "rlhf" / "hf")
