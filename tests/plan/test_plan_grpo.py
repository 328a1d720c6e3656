"""The planner's reading of a critic-free GRPO stage: no critic, a reference only with a KL
term, a reward model only when a reward uses it, the rollout as prompts x group size."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("extra", "roles"),
    [
        (["stage.reward=mcq"], "policy 1.9M (trained), reference 1.9M (frozen)"),
        (["stage.reward=mcq", "stage.grpo.kl_coef=0"], "policy 1.9M (trained)\n"),
        (
            ["stage.reward=reward_model+format", "stage.grpo.kl_coef=0"],
            "policy 1.9M (trained), reward 1.3M (frozen)",
        ),
    ],
)
def test_grpo_holds_only_the_models_it_uses(run_cli, extra, roles):
    r = run_cli("plan", "stage=rlhf", "stage.algorithm=grpo", "stage.grpo.group_size=8", *extra)
    assert r.code == 0, r.err[-2000:]
    head = next(line for line in r.out.splitlines() if line.startswith("== rlhf"))
    assert head.startswith("== rlhf (grpo): ") and "critic" not in head
    assert roles.strip() == head.split(": ", 1)[1].strip()
    assert "rollout 128 x 144 tokens (prompts x group)" in r.out  # 16 prompts x 8


def test_grpo_memory_advice_halves_its_update_minibatch(run_cli):
    r = run_cli(
        "plan",
        "stage=rlhf",
        "stage.algorithm=grpo",
        "stage.reward=mcq",
        "model=qwen2_5_7b",
        "trainer.devices=1",
    )
    assert r.code == 0, r.err[-2000:]
    assert "stage.grpo.minibatch_size=" in r.out, r.out[-3000:]
