"""Launching beyond one process: torchrun, Hydra's joblib and submitit launchers.

Each job writes exactly one output dir and one W&B run, whatever the number of ranks."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.scale.conftest import summary

REPO = Path(__file__).resolve().parents[2]
PRETRAIN_SHORT = [
    "stage=pretrain",
    "trainer.max_steps=3",
    "trainer.val_check_interval=3",
    "trainer.enable_progress_bar=false",
    "data.max_length=64",
]


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="offline", WANDB_SILENT="true")
    env.pop("LOCAL_RANK", None)
    return env


def _cli(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "chimed_lit.cli.main", "fit", *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    return proc


def _sweep_rows(out: Path) -> list[dict]:
    (summary_csv,) = out.glob("sweeps/*/sweep_summary.csv")
    return list(csv.DictReader(summary_csv.open()))


@pytest.mark.slow
def test_torchrun_script_runs_two_ranks_with_one_output_dir_and_one_wandb_run(tmp_path, tiny_base):
    out = tmp_path / "tr"
    env = dict(_env(), NPROC="2", MASTER_PORT="29631")
    proc = subprocess.run(
        [
            "bash",
            str(REPO / "scripts" / "cluster" / "torchrun.sh"),
            "stage=sft",
            f"model.pretrained={tiny_base}",
            "strategy=ddp",
            "trainer.max_steps=4",
            "trainer.val_check_interval=2",
            "data.max_length=128",
            "data.batch_size=4",
            "trainer.enable_progress_bar=false",
            "logger=[csv,wandb]",
            f"paths.output_dir={out}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    s = summary(out)
    assert s["global_step"] == 4
    assert s["final"]["sft/val_loss"] < s["initial"]["sft/val_loss"]
    assert len(list((out / "wandb").glob("offline-run-*"))) == 1
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [".hydra", "sft", "wandb"]


@pytest.mark.slow
def test_joblib_launcher_runs_a_sweep_in_parallel_one_dir_and_run_per_job(tmp_path):
    out = tmp_path / "jl"
    _cli(
        "-m",
        *PRETRAIN_SHORT,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "optimizer.lr=1e-3,3e-3",
        "logger=[csv,wandb]",
        f"paths.output_dir={out}",
    )
    rows = _sweep_rows(out)
    assert len(rows) == 2
    assert float(rows[0]["val_loss"]) != float(rows[1]["val_loss"])
    jobs = sorted(p for p in next(out.glob("sweeps/*")).iterdir() if p.name.isdigit())
    assert [j.name for j in jobs] == ["0", "1"]
    for job in jobs:
        assert (job / "pretrain" / "summary.json").is_file()
        assert len(list((job / "wandb").glob("offline-run-*"))) == 1


@pytest.mark.slow
def test_submitit_launcher_runs_a_job_through_submitit(tmp_path):
    """submitit's local executor: the same code path as `hydra/launcher=submitit_slurm`, minus
    the SLURM scheduler (pickled task, job folder, result collected by the launcher)."""
    out = tmp_path / "sl"
    _cli(
        "-m",
        *PRETRAIN_SHORT,
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=20",
        "logger=csv",
        f"paths.output_dir={out}",
    )
    rows = _sweep_rows(out)
    assert len(rows) == 1 and float(rows[0]["val_loss"]) > 0
    assert list(out.glob("sweeps/*/.submitit/*"))  # submitit's job folder


def test_submitit_slurm_launcher_composes_with_cluster_settings(run_cli, tmp_path):
    r = run_cli(
        "fit",
        "stage=sft",
        "hydra/launcher=submitit_slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.gpus_per_node=8",
        "hydra.launcher.tasks_per_node=8",
        f"paths.output_dir={tmp_path}",
        "--cfg",
        "hydra",
    )
    assert r.code == 0, r.err
    assert "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher" in r.out
    assert "partition: gpu" in r.out and "gpus_per_node: 8" in r.out
