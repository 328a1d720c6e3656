"""Hydra's sweep syntax through `chimed-lit fit -m`: values that can be listed are checked one by
one (all problems at once, exit 2), the rest reach the sweeper as typed; nothing crashes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN_DIR = Path(__file__).parent / "sweeper_plugin"


def chimed_lit(*args: str, cwd: Path, plugins: bool = False) -> subprocess.CompletedProcess:
    """The real command in a fresh process (Hydra configures logging and scans plugins once per
    process; a multirun belongs in its own)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if plugins:
        env["PYTHONPATH"] = os.pathsep.join([str(PLUGIN_DIR), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "chimed_lit", "fit", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "sweep, message",
    [
        ("seed=choice(1,a)", "seed='a': expected an integer"),
        ("seed=tag(seeds,choice(1,b))", "seed='b': expected an integer"),
        ("resume=shuffle(choice(true,maybe))", "resume='maybe': expected true or false"),
        ("optimizer.lr=1e-3,fast", "optimizer.lr='fast': expected a number"),
        ("model=glob(zzz*)", "model=glob(zzz*): matches no option; model is one of"),
        ("strategy=ddp,fsdp3", "strategy=fsdp3: no such option; strategy is one of"),
        ("optimizer.lrr=interval(0.1,0.2)", "unknown key 'optimizer.lrr'"),
        ("pretrain.optimizer.lr=choice(0.1,slow)", "pretrain.optimizer.lr='slow': expected a"),
    ],
)
def test_listable_sweeps_are_checked_value_by_value(run_cli, tmp_path, sweep, message):
    r = run_cli("fit", "-m", "stage=sft", sweep, f"paths.output_dir={tmp_path}")
    assert r.code == 2, r.err
    assert message in r.err
    assert "Traceback" not in r.err + r.out and "stage_overrides" not in r.err
    assert not (tmp_path / "sweeps").exists()  # stopped before Hydra made a sweep dir


def test_every_sweep_problem_is_reported_at_once(run_cli):
    r = run_cli("fit", "-m", "seed=range(1,3)", "seed=choice(1,a)", "model=glob(zzz*)")
    assert r.code == 2 and "2 configuration errors" in r.err


def test_interval_with_the_basic_sweeper_is_explained_not_a_traceback(run_cli):
    r = run_cli("fit", "-m", "optimizer.lr=interval(1e-4,1e-2)")
    assert r.code == 2
    assert "optimizer.lr=interval(1e-4,1e-2): the basic sweeper lists values" in r.err
    assert "hydra/sweeper=optuna" in r.err and "Traceback" not in r.err


def test_a_sweeper_that_is_not_installed_is_named_with_how_to_get_it(run_cli):
    r = run_cli("fit", "-m", "hydra/sweeper=optuna", "optimizer.lr=interval(1e-4,1e-2)")
    assert r.code == 2
    assert "hydra/sweeper=optuna: no such option; hydra/sweeper is one of basic" in r.err
    assert "pip install hydra-<name>-sweeper" in r.err
    assert "1 configuration error" in r.err or "configuration error:" in r.err
    assert "Can only enumerate" not in r.err and "Traceback" not in r.err


def test_listable_sweeps_reach_the_basic_sweeper(tmp_path):
    """range, tag, glob, shuffle(choice) and a comma list: 2 x 1 x 2 x 2 jobs. The first job
    stops in the pre-flight (fp16 on a CPU), so nothing trains; the sweep dir shows what Hydra
    got."""
    sweeps = [
        "seed=tag(seeds,range(1,3))",
        "strategy=glob(dd*)",
        "optimizer.lr=shuffle(choice(0.1,0.2))",
        "data.batch_size=1,2",
    ]
    r = chimed_lit(
        "-m",
        *sweeps,
        "trainer.accelerator=cpu",
        "trainer.precision=16-mixed",
        "logger=none",
        f"paths.output_dir={tmp_path}",
        cwd=tmp_path,
    )
    assert r.returncode == 2, r.stderr
    assert "Launching 8 jobs locally" in r.stdout + r.stderr
    assert "fp16 is not supported" in r.stderr  # the first job ran to the pre-flight
    (multirun,) = (tmp_path / "sweeps").glob("*/multirun.yaml")
    task = multirun.read_text()
    for sweep in sweeps:
        assert sweep in task, sweep
    assert not list(tmp_path.glob("sweeps/*/0/pretrain/checkpoints"))


def test_sampled_sweeps_reach_a_sweeper_plugin_as_typed(tmp_path):
    """interval(...) and tag(log, interval(...)) go unchecked to the sweeper the user picks (a
    recording plugin standing in for Optuna), with a stage prefix routed as for a plain run."""
    typed = [
        "optimizer.lr=interval(1e-4,1e-2)",
        "optimizer.weight_decay=tag(log,interval(1e-5,1e-1))",
        "seed=choice(1,2)",
    ]
    r = chimed_lit(
        "-m",
        "hydra/sweeper=recording",
        "stage=sft",
        "pretrain.optimizer.lr=0.1",
        *typed,
        f"paths.output_dir={tmp_path}",
        cwd=tmp_path,
        plugins=True,
    )
    assert r.returncode == 0, r.stderr
    (line,) = [x for x in r.stdout.splitlines() if x.startswith("recorded sweep: ")]
    rows = json.loads(line.removeprefix("recorded sweep: "))
    got = {row["text"]: row["type"] for row in rows}
    assert got["optimizer.lr=interval(1e-4,1e-2)"] == "INTERVAL_SWEEP"
    assert got["optimizer.weight_decay=tag(log,interval(1e-5,1e-1))"] == "INTERVAL_SWEEP"
    assert got["seed=choice(1,2)"] == "CHOICE_SWEEP"
    assert got["++stage_overrides.pretrain.optimizer.lr=0.1"] == "ELEMENT"
    assert "Traceback" not in r.stderr
