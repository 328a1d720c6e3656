"""GRPO-family runs on a tiny random policy (tests/reliability's `tiny_models`): fast, and its
replies vary in length, so a length reward gives every group a spread to learn from."""

from __future__ import annotations

from tests.reliability.conftest import tiny_models  # noqa: F401  (a fixture, used by name)

QUIET = (
    "logger=csv",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
)


def grpo_args(policy, algorithm: str = "grpo", *extra: str) -> list[str]:
    """`fit stage=rlhf` with a GRPO-family algorithm on the demo MCQs, small and fast: the
    reward mixes the verifiable mcq and format rewards with a length target the random policy
    hits sometimes (a spread in every group)."""
    return [
        "stage=rlhf",
        *QUIET,
        f"stage.algorithm={algorithm}",
        f"stage.policy={policy}",
        "stage.reward=mcq+format+length",
        "stage.reward_options.length.min_chars=4",
        "stage.reward_options.length.max_chars=8",
        "stage.grpo.group_size=4",
        "stage.grpo.sampling.max_new_tokens=6",
        "stage.grpo.val_sampling.max_new_tokens=6",
        "stage.grpo.table_every_n_steps=1",
        "data=mcq_demo",
        "data.batch_size=4",
        "data.eval_batch_size=8",
        "data.max_records=24",
        "trainer.val_check_interval=1000",
        "scheduler.total_steps=8",
        "seed=5",
        *extra,
    ]
