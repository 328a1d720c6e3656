"""The validation due at a checkpoint's step runs after `resume=true` when the interrupted run did
not finish it, and only then (`callbacks/resumed_validation.py`).

A tiny pretrain validates and checkpoints every 3 steps (step 3 is mid-epoch: 6 batches of 4).
Lightning writes the step-3 checkpoint before the step-3 validation; a run SIGKILLed in that
validation (the fault-injection callback's `signal_at=fit_validation`) and resumed logs the same
validation rows, `(step, val_loss)`, as a run never interrupted; so does a run SIGKILLed in step 4,
after the step-3 validation finished, which must not validate at step 3 again.
"""

from __future__ import annotations

import csv
import json
import shutil
import signal
from pathlib import Path

import pytest

from tests.reliability.conftest import QUIET, assert_same_weights, fit_in_process, run_child

TINY = [
    "stage=pretrain",
    *(a for a in QUIET if not a.startswith("trainer.val_check_interval=")),
    "trainer.val_check_interval=3",
    "checkpoint.every_n_steps=3",
    "trainer.max_steps=6",
    "scheduler.total_steps=6",
    "model.arch.num_hidden_layers=2",
    "data.batch_size=4",
    "seed=5",
]
DUE = "running the validation due at step 3"


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    return fit_in_process(tmp_path_factory.mktemp("straight"), *TINY)


def validations(out: Path) -> list[tuple[int, float]]:
    """The validation rows of `metrics.csv`, in order: (logged step, val_loss)."""
    rows = csv.DictReader((out / "pretrain" / "csv" / "metrics.csv").open())
    return [(int(r["step"]), float(r["pretrain/val_loss"])) for r in rows if r["pretrain/val_loss"]]


def assert_same_validations(want: list, got: list) -> None:
    assert [s for s, _ in got] == [s for s, _ in want], (want, got)
    assert [v for _, v in got] == pytest.approx([v for _, v in want], abs=1e-6)


def test_straight_run_validates_at_each_interval(straight):
    # before training (step 0), after steps 3 and 6 (logged at 2 and 5), the final one (6)
    assert [s for s, _ in validations(straight)] == [0, 2, 5, 6]


def test_killed_in_the_validation_after_a_checkpoint_runs_it_on_resume(run_cli, straight, tmp_path):
    out = tmp_path / "run"
    child = run_child(
        "fit",
        *TINY,
        f"paths.output_dir={out}",
        "callbacks.fault_injection.signal_at=fit_validation",
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    ckpts = out / "pretrain" / "checkpoints"
    assert sorted(p.name for p in ckpts.glob("*.ckpt")) == ["step000003.ckpt"]
    assert [s for s, _ in validations(out)] == [0]  # step 3's validation never finished
    # a finished run of another lineage left its record here (the same output dir run afresh)
    shutil.copy(straight / "pretrain" / "checkpoints" / "validated.json", ckpts)
    assert json.loads((ckpts / "validated.json").read_text())["step"] == 6

    r = run_cli("fit", *TINY, f"paths.output_dir={out}", "resume=true")
    assert r.code == 0, r.err[-3000:]
    assert_same_validations(validations(straight), validations(out))
    assert "resuming" in r.out + r.err and DUE in r.out + r.err
    assert_same_weights(straight / "pretrain" / "hf", out / "pretrain" / "hf")


def test_killed_after_the_validation_finished_does_not_validate_twice(run_cli, straight, tmp_path):
    out = tmp_path / "run"
    child = run_child(
        "fit", *TINY, f"paths.output_dir={out}", "callbacks.fault_injection.kill_at_step=3"
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    ckpts = out / "pretrain" / "checkpoints"
    assert sorted(p.name for p in ckpts.glob("*.ckpt")) == ["step000003.ckpt"]
    assert [s for s, _ in validations(out)] == [0, 2]  # step 3's validation finished
    assert json.loads((ckpts / "validated.json").read_text())["step"] == 3

    r = run_cli("fit", *TINY, f"paths.output_dir={out}", "resume=true")
    assert r.code == 0, r.err[-3000:]
    assert_same_validations(validations(straight), validations(out))
    assert "resuming" in r.out + r.err and DUE not in r.out + r.err
    assert_same_weights(straight / "pretrain" / "hf", out / "pretrain" / "hf")
