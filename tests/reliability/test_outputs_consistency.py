"""A stage's outputs always describe one run: a failed run leaves the previous `hf/`,
`summary.json`, `config.yaml` (and `stage.json`) as they were; `stage.json` never vouches for an
`hf/` written by another config; CSV metrics are appended across a kill and a resume."""

from __future__ import annotations

import csv
import json
import shutil
import signal
from pathlib import Path

import pytest

from tests.reliability.conftest import QUIET, fit_in_process, run_child

TINY = [
    "stage=pretrain",
    *QUIET,
    "model.arch.num_hidden_layers=2",
    "scheduler.total_steps=6",
    "checkpoint.every_n_steps=2",
    "seed=9",
]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    return fit_in_process(tmp_path_factory.mktemp("done"), *TINY, "trainer.max_steps=2")


def outputs(sdir: Path) -> dict[str, bytes]:
    names = ["stage.json", "summary.json", "config.yaml", "hf/model.safetensors"]
    return {n: (sdir / n).read_bytes() for n in names}


def test_a_failed_run_leaves_the_previous_outputs(run_cli, finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    before = outputs(out / "pretrain")
    r = run_cli(
        "fit",
        *TINY,
        "trainer.max_steps=3",
        "optimizer.lr=1e-3",
        "callbacks.fault_injection.nan_at_steps=[1]",
        f"paths.output_dir={out}",
    )
    assert r.code == 5, r.err[-2000:]
    assert outputs(out / "pretrain") == before  # stage.json too: hf/ was not touched
    running = (out / "pretrain" / "config.next.yaml").read_text()  # the failed run's config
    assert "lr: 0.001" in running


def test_stage_json_goes_before_hf_changes(run_cli, finished, tmp_path, monkeypatch):
    """A run dying after its new hf/ is in place, before stage.json is written (a kill there),
    leaves no stage.json: the old command then retrains instead of reusing the new weights."""
    from chimed_lit.run import stage_runner

    out = tmp_path / "run"
    shutil.copytree(finished, out)
    real = stage_runner.export_hf

    def export_then_die(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt  # what a kill leaves: new hf/, nothing after it

    monkeypatch.setattr(stage_runner, "export_hf", export_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_cli("fit", *TINY, "trainer.max_steps=2", "seed=10", f"paths.output_dir={out}")
    monkeypatch.undo()
    assert not (out / "pretrain" / "stage.json").exists()
    r = run_cli("fit", *TINY, "trainer.max_steps=2", f"paths.output_dir={out}")
    assert r.code == 0, r.err[-2000:]
    assert "reusing pretrain" not in r.out + r.err
    assert (out / "pretrain" / "hf" / "model.safetensors").read_bytes() == (
        finished / "pretrain" / "hf" / "model.safetensors"
    ).read_bytes()


def filled(row: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in row.items() if v}


def rows(out: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((out / "pretrain" / "csv" / "metrics.csv").open()))


def test_csv_metrics_are_appended_across_a_kill_and_resume(run_cli, tmp_path):
    out = tmp_path / "run"
    args = [*TINY, "trainer.max_steps=5", f"paths.output_dir={out}"]
    child = run_child("fit", *args, "callbacks.fault_injection.kill_at_step=3")
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    before = rows(out)
    assert before  # the killed run flushed rows
    r = run_cli("fit", *args, "resume=true")
    assert r.code == 0, r.err[-2000:]
    after = rows(out)
    # the interrupted run's rows up to its checkpoint (step 2) stay, the initial validation too
    kept = [r for r in before if int(r["step"]) <= 2]
    assert [filled(r) for r in after[: len(kept)]] == [filled(r) for r in kept]
    assert after[0]["pretrain/val_loss"]  # the initial validation, logged only before the kill
    train = {int(r["step"]) for r in after if r["pretrain/train_loss"]}
    assert train == set(range(5))
    resume = json.loads((out / "pretrain" / "summary.json").read_text())["resume"]
    assert resume["step"] == 2


def test_a_stage_trained_afresh_logs_into_an_empty_csv(run_cli, tmp_path):
    # a changed config retrains the stage from scratch in the same folder: the earlier run's
    # rows (another learning rate) must not sit above the new run's in metrics.csv
    out = tmp_path / "run"
    args = [*TINY, "trainer.max_steps=3", f"paths.output_dir={out}"]
    assert run_cli("fit", *args).code == 0
    first = rows(out)
    r = run_cli("fit", *args, "optimizer.lr=2e-3")
    assert r.code == 0, r.err[-2000:]
    second = rows(out)
    train = [int(r["step"]) for r in second if r["pretrain/train_loss"]]
    assert train == [0, 1, 2]  # each step once: the first run's rows are gone
    assert len(second) == len(first)
    assert [r["pretrain/train_loss"] for r in second] != [r["pretrain/train_loss"] for r in first]
