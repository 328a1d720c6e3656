"""kill -9 in the middle of a GRPO-family update, `resume=true`: the same run. DAPO is the
hardest member to resume: its dynamic-sampling buffer holds groups sampled before the
checkpoint, and its refills draw from the sampler and RNG (`modules/rollout_groups.py`)."""

from __future__ import annotations

import signal

import pytest
import torch

from tests.grpo.conftest import grpo_args
from tests.reliability.conftest import assert_same_weights, metrics, run_child

pytestmark = pytest.mark.slow


def test_dapo_killed_mid_update_resumes_to_the_same_run(run_cli, tiny_models, tmp_path):
    args = grpo_args(
        tiny_models["lm"],
        "dapo",
        "trainer.max_steps=6",
        "scheduler.total_steps=6",
        "checkpoint.every_n_steps=1",
        "stage.grpo.minibatch_size=8",  # two updates per step: the kill lands between them
    )
    straight, split = tmp_path / "straight", tmp_path / "split"
    r = run_cli("fit", *args, f"paths.output_dir={straight}")
    assert r.code == 0, r.err[-3000:]
    updated = metrics(straight, "rlhf", "rlhf/updated")
    buffered = metrics(straight, "rlhf", "rlhf/buffered_groups")
    # groups left in the buffer after step k - 1 (held before its update, minus a batch of 4)
    left = {k: buffered[k - 1] - 4 * updated[k - 1] for k in updated if k >= 2}
    steps = [k for k in sorted(updated) if k >= 2 and updated[k] == 1.0]
    assert steps, updated  # the kill hook runs before an optimizer step: one must happen
    kill = next((k for k in steps if left[k] > 0), steps[0])

    child = run_child(
        "fit", *args, f"paths.output_dir={split}", f"callbacks.fault_injection.kill_at_step={kill}"
    )
    assert child.returncode == -signal.SIGKILL, (child.returncode, child.stderr[-3000:])
    ckpt = torch.load(split / "rlhf" / "checkpoints" / f"step{kill:06d}.ckpt", weights_only=True)
    held = ckpt["grpo"]["ranks"][0]["buffer"]["groups"]
    assert len(held) == left[kill]  # the buffer travels in the checkpoint
    r = run_cli("fit", *args, f"paths.output_dir={split}", "resume=true")
    assert r.code == 0, r.err[-3000:]
    assert "resuming" in r.out + r.err
    for key in ("rlhf/reward", "rlhf/updated", "rlhf/buffered_groups"):
        want, got = metrics(straight, "rlhf", key), metrics(split, "rlhf", key)
        for step in [s for s in want if s >= kill]:
            assert got[step] == pytest.approx(want[step], abs=1e-6), (key, step)
    assert_same_weights(straight / "rlhf" / "hf", split / "rlhf" / "hf")
