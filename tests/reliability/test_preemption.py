"""Preemption: SIGTERM (or SIGUSR1) mid-run -> a loadable checkpoint at the end of the running
step and exit code 75; `resume=true` then ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch

from chimed_lit.callbacks.preemption import PREEMPTED_EXIT_CODE
from tests.reliability.conftest import QUIET, assert_same_weights, child_env, run_child

TOTAL = 40
TINY = [
    "stage=pretrain",
    *QUIET,
    "model.arch.num_hidden_layers=2",
    f"scheduler.total_steps={TOTAL}",
    "checkpoint.every_n_steps=1",
    "seed=41",
    "data.batch_size=2",
    "data.max_length=64",
]

pytestmark = pytest.mark.slow


def test_sigterm_saves_exits_75_and_resume_finishes_the_same(run_cli, tmp_path):
    out = tmp_path / "split"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chimed_lit",
            "fit",
            *TINY,
            f"trainer.max_steps={TOTAL}",
            f"paths.output_dir={out}",
        ],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ckpts = out / "pretrain" / "checkpoints"
    deadline = time.time() + 300
    while not list(ckpts.glob("step*.ckpt")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.terminate()  # SIGTERM, as a scheduler sends it
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == PREEMPTED_EXIT_CODE == 75, err[-3000:]
    saved = ckpts / "preempted.ckpt"
    assert "chimed-lit: preempted by SIGTERM at step " in err and f"saved {saved}" in err
    assert "run the same command with resume=true to continue (exit code 75)" in err
    assert "Traceback" not in err
    state = torch.load(saved, weights_only=True, map_location="cpu")
    step = state["global_step"]
    assert 0 < step < TOTAL and state["chimed_lit"]["stage"] == "pretrain"
    assert not (out / "pretrain" / "hf").exists()

    r = run_cli(
        "fit", *TINY, f"trainer.max_steps={TOTAL}", f"paths.output_dir={out}", "resume=true"
    )
    assert r.code == 0, r.err[-3000:]
    assert f"resuming pretrain from {saved}" in r.out + r.err
    straight = tmp_path / "straight"
    r = run_cli("fit", *TINY, f"trainer.max_steps={TOTAL}", f"paths.output_dir={straight}")
    assert r.code == 0, r.err[-3000:]
    assert_same_weights(straight / "pretrain" / "hf", out / "pretrain" / "hf")


def test_sigusr1_saves_at_the_end_of_the_step(tmp_path):
    # the signal arrives inside step 3 (after its backward): the checkpoint holds 3 + 1 steps
    child = run_child(
        "fit",
        *TINY,
        "trainer.max_steps=10",
        f"paths.output_dir={tmp_path}",
        "callbacks.fault_injection.kill_at_step=3",
        "callbacks.fault_injection.kill_signal=SIGUSR1",
    )
    assert child.returncode == 75, child.stderr[-3000:]
    assert "preempted by SIGUSR1 at step 4" in child.stderr
    state = torch.load(
        tmp_path / "pretrain" / "checkpoints" / "preempted.ckpt",
        weights_only=True,
        map_location="cpu",
    )
    assert state["global_step"] == 4
