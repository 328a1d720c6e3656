"""kill -9 anywhere, `resume=true`, same run: for every stage, a run SIGKILLed in the middle of a
step (after its backward, before its update) and resumed ends with the same per-step losses
(PPO: rewards and KL too) and the same exported weights as a run never interrupted (fp32, CPU).

The kill is the fault-injection callback's `kill_at_step`: the child process sends itself
SIGKILL, so nothing in it gets a chance to clean up. Kill steps across the suite: 3 (pretrain,
exactly at the end of an epoch of 3 batches), 2 (sft, mid-epoch), 4 (reward, mid-epoch),
2 (rlhf PPO), 3 (the SFT of a rejection-sampling round).
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.reliability.conftest import QUIET, assert_same_weights, metrics, run_child

pytestmark = pytest.mark.slow


def kill_and_resume(
    run_cli,
    tmp_path: Path,
    args: list[str],
    kill_at: int,
    kill_key: str = "callbacks.fault_injection.kill_at_step",
) -> tuple[Path, Path]:
    """An uninterrupted run and a killed-then-resumed one of the same command."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    r = run_cli("fit", *args, f"paths.output_dir={straight}")
    assert r.code == 0, r.err[-3000:]
    child = run_child("fit", *args, f"paths.output_dir={split}", f"{kill_key}={kill_at}")
    assert child.returncode == -signal.SIGKILL, (child.returncode, child.stderr[-3000:])
    r = run_cli("fit", *args, f"paths.output_dir={split}", "resume=true")
    assert r.code == 0, r.err[-3000:]
    assert "resuming" in r.out + r.err
    return straight, split


def assert_same_from(want: dict[int, float], got: dict[int, float], first: int, n: int) -> None:
    later = [s for s in want if s >= first]
    assert len(later) >= n, want
    for step in later:
        assert got[step] == pytest.approx(want[step], abs=1e-6), (step, want, got)


def test_pretrain_killed_at_the_epoch_boundary(run_cli, tmp_path):
    # the demo corpus packs into 3 batches per epoch: step 3 is the first of epoch 2
    args = [
        "stage=pretrain",
        *QUIET,
        "trainer.max_steps=6",
        "scheduler.total_steps=6",
        "checkpoint.every_n_steps=1",
        "model.arch.num_hidden_layers=2",
        "data.batch_size=8",
        "seed=3",
    ]
    straight, split = kill_and_resume(run_cli, tmp_path, args, kill_at=3)
    data = json.loads((straight / "pretrain" / "summary.json").read_text())["data"]
    assert data["train_blocks"] // 8 == 3  # the checkpoint resumed from ends epoch 1 exactly
    assert len(list((split / "pretrain" / "checkpoints").glob("*.ckpt"))) >= 1
    key = "pretrain/train_loss"
    assert_same_from(metrics(straight, "pretrain", key), metrics(split, "pretrain", key), 3, 3)
    assert_same_weights(straight / "pretrain" / "hf", split / "pretrain" / "hf")


def test_sft_killed_mid_epoch(run_cli, tmp_path, tiny_models):
    args = [
        "stage=sft",
        *QUIET,
        f"model.pretrained={tiny_models['lm']}",
        "trainer.max_steps=5",
        "scheduler.total_steps=5",
        "checkpoint.every_n_steps=1",
        "data.max_records=24",
        "data.batch_size=4",
        "data.max_length=96",
        "seed=5",
    ]
    straight, split = kill_and_resume(run_cli, tmp_path, args, kill_at=2)
    key = "sft/train_loss"
    assert_same_from(metrics(straight, "sft", key), metrics(split, "sft", key), 2, 3)
    assert_same_weights(straight / "sft" / "hf", split / "sft" / "hf")


def test_reward_killed_mid_epoch(run_cli, tmp_path, tiny_models):
    args = [
        "stage=reward",
        *QUIET,
        f"model.pretrained={tiny_models['lm']}",
        "trainer.max_steps=6",
        "scheduler.total_steps=6",
        "checkpoint.every_n_steps=2",
        "data.max_records=40",
        "data.batch_size=4",
        "data.max_length=96",
        "seed=11",
    ]
    straight, split = kill_and_resume(run_cli, tmp_path, args, kill_at=4)
    key = "reward/train_loss"
    assert_same_from(metrics(straight, "reward", key), metrics(split, "reward", key), 4, 2)
    assert_same_weights(straight / "reward" / "hf", split / "reward" / "hf")


PPO = [
    "stage=rlhf",
    *QUIET,
    "trainer.max_steps=4",
    "scheduler.total_steps=4",
    "checkpoint.every_n_steps=1",
    "data.batch_size=4",
    "data.max_records=32",
    "stage.module.sampling.max_new_tokens=12",
    "stage.module.val_sampling.max_new_tokens=12",
    "stage.module.minibatch_size=2",
    "data.eval_batch_size=8",
    "seed=13",
]


def test_ppo_killed_mid_run(run_cli, tmp_path, tiny_models):
    args = [
        *PPO,
        f"stage.policy={tiny_models['lm']}",
        f"stage.reward_model={tiny_models['reward']}",
    ]
    straight, split = kill_and_resume(run_cli, tmp_path, args, kill_at=2)
    for key in (
        "rlhf/reward_mean",
        "rlhf/kl",
        "rlhf/kl_coef",
        "rlhf/policy_loss",
        "rlhf/value_loss",
    ):
        assert_same_from(metrics(straight, "rlhf", key), metrics(split, "rlhf", key), 2, 2)
    assert_same_weights(straight / "rlhf" / "hf", split / "rlhf" / "hf")


def test_rejection_sampling_killed_inside_a_round(run_cli, tmp_path, tiny_models):
    args = [
        "stage=rlhf",
        "stage.algorithm=rejection_sampling",
        *QUIET,
        f"stage.policy={tiny_models['lm']}",
        f"stage.reward_model={tiny_models['reward']}",
        "stage.rejection.rounds=1",
        "stage.rejection.samples_per_prompt=2",
        "stage.rejection.sft_steps=5",
        "stage.rejection.sampling.max_new_tokens=12",
        "stage.module.val_sampling.max_new_tokens=12",
        "data.max_records=12",
        "checkpoint.every_n_steps=1",
        "sft.data.batch_size=2",
        "sft.scheduler.total_steps=5",
        "sft.trainer.log_every_n_steps=1",
        "seed=17",
    ]
    straight, split = kill_and_resume(
        run_cli, tmp_path, args, kill_at=3, kill_key="sft.callbacks.fault_injection.kill_at_step"
    )
    key = "sft/train_loss"
    want = metrics(straight / "rlhf" / "round0", "sft", key)
    got = metrics(split / "rlhf" / "round0", "sft", key)
    assert_same_from(want, got, 3, 2)
    assert_same_weights(straight / "rlhf" / "hf", split / "rlhf" / "hf")
    for name in ("samples.jsonl", "scored.jsonl"):
        a = (straight / "rlhf" / "round0" / name).read_text(encoding="utf-8")
        assert a == (split / "rlhf" / "round0" / name).read_text(encoding="utf-8"), name
