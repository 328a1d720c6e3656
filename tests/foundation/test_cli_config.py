"""The CLI's configuration contract: help, resolved config, and every bad override at once."""

from __future__ import annotations

import subprocess
import sys

import pytest

FAST = ("logger=csv", "trainer.max_steps=2")


def test_help_lists_commands_and_groups(run_cli):
    r = run_cli("--help")
    assert r.code == 0
    assert "fit" in r.out
    for group in (
        "stage",
        "model",
        "data",
        "trainer",
        "strategy",
        "logger",
        "callbacks",
        "paths",
        "experiment",
    ):
        assert f"  {group} " in r.out, group
    assert "tiny" in r.out and "pretrain" in r.out


def test_cfg_job_prints_resolved_config(run_cli, tmp_path):
    r = run_cli("fit", "--cfg", "job", f"paths.output_dir={tmp_path}", "optimizer.lr=0.01")
    assert r.code == 0, r.err
    assert "lr: 0.01" in r.out
    assert "_target_: chimed_lit.modules.causal_lm.CausalLMModule" in r.out
    assert not (tmp_path / "pretrain").exists()  # printing trains nothing


def test_unknown_key_and_wrong_type_reported_together(run_cli, tmp_path):
    r = run_cli(
        "fit",
        f"paths.output_dir={tmp_path}",
        "trainer.max_stepz=5",
        "optimizer.lr=fast",
        "seed=1.5",
        "data.pack=maybe",
    )
    assert r.code == 2
    assert "4 configuration errors" in r.err
    assert "unknown key 'trainer.max_stepz' (did you mean 'trainer.max_steps'?)" in r.err
    assert "optimizer.lr='fast': expected a number" in r.err
    assert "seed=1.5: expected an integer" in r.err
    assert "data.pack='maybe': expected true or false" in r.err
    assert "Traceback" not in r.err + r.out
    assert not (tmp_path / "pretrain").exists()


def test_bad_group_option_lists_choices(run_cli):
    r = run_cli("fit", "model=tinyy")
    assert r.code == 2
    assert "model=tinyy: no such option; model is one of" in r.err and "tiny" in r.err
    assert "Traceback" not in r.err


def test_any_trainer_argument_is_accepted(run_cli, tmp_path):
    r = run_cli(
        "fit", "--cfg", "job", f"paths.output_dir={tmp_path}", "trainer.detect_anomaly=true"
    )
    assert r.code == 0, r.err
    assert "detect_anomaly: true" in r.out


def test_fp16_on_cpu_refused_before_building(run_cli, tmp_path):
    r = run_cli(
        "fit",
        *FAST,
        f"paths.output_dir={tmp_path}",
        "trainer.accelerator=cpu",
        "trainer.precision=16-mixed",
    )
    assert r.code == 2
    assert "fp16 is not supported" in r.err
    assert not (tmp_path / "pretrain" / "checkpoints").exists()


def test_console_script_runs_from_any_directory(tmp_path):
    exe = sys.executable.replace("python", "chimed-lit").rsplit("/", 1)
    script = "/".join(exe[:-1] + ["chimed-lit"])
    r = subprocess.run(
        [script, "fit", "--cfg", "job"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert "name: pretrain" in r.stdout


@pytest.mark.parametrize("bad", ["stage=nope", "logger=nope"])
def test_each_bad_choice_is_named(run_cli, bad):
    r = run_cli("fit", bad)
    assert r.code == 2 and bad.split("=")[0] in r.err
