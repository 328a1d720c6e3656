"""Adding a stage is one module plus one YAML: a stage declared outside the package (its module
on PYTHONPATH, its YAML in a folder given by `--config-dir`) runs through the real
`chimed-lit fit` command by configuration alone, with its own check in the one preflight."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

STAGE_MODULE = '''
"""A stage of our own: pre-training as it is, plus a note written after training."""
from pathlib import Path

from chimed_lit.stages import Stage


class Echo(Stage):
    def problems(self, cfg):
        return [] if cfg.stage.note else ["stage.note is empty: the echo stage writes it"]

    def run(self, cfg, ctx):
        summary = super().run(cfg, ctx)
        (Path(summary["hf_dir"]).parent / "note.txt").write_text(cfg.stage.note)
        return summary
'''

STAGE_YAML = """
# @package _global_
defaults:
  - override /data: pretrain_demo

stage:
  name: echo
  spec: {_target_: echo_stage.Echo}
  needs: []
  note: hello from outside
  module:
    _target_: chimed_lit.modules.causal_lm.CausalLMModule
    stage: echo

optimizer:
  _target_: torch.optim.AdamW
  _partial_: true
  lr: 3.0e-3

trainer:
  max_steps: 3
  val_check_interval: 3
"""


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the folder on PYTHONPATH holding the module, the extra config dir), outside the package."""
    root = tmp_path_factory.mktemp("outside")
    (root / "code").mkdir()
    (root / "code" / "echo_stage.py").write_text(textwrap.dedent(STAGE_MODULE))
    (root / "conf" / "stage").mkdir(parents=True)
    (root / "conf" / "stage" / "echo.yaml").write_text(STAGE_YAML)
    return root / "code", root / "conf"


def chimed_lit(outside: tuple[Path, Path], command: str, *args: str) -> subprocess.CompletedProcess:
    """`chimed-lit COMMAND --config-dir CONF ARGS` with the stage's module on PYTHONPATH."""
    code, conf = outside
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(code), os.environ.get("PYTHONPATH", "")])
    )
    cli = Path(sys.executable).with_name("chimed-lit")
    return subprocess.run(
        [str(cli), command, "--config-dir", str(conf), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def fit(outside: tuple[Path, Path], out: Path, *args: str) -> subprocess.CompletedProcess:
    return chimed_lit(
        outside,
        "fit",
        "stage=echo",
        f"paths.output_dir={out}",
        "logger=csv",
        "trainer.accelerator=cpu",
        *args,
    )


def test_an_outside_stage_runs_through_chimed_lit_fit(outside, tmp_path):
    from transformers import AutoModelForCausalLM

    r = fit(outside, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    stage = tmp_path / "echo"
    summary = json.loads((stage / "summary.json").read_text())
    assert summary["stage"] == "echo" and summary["global_step"] == 3
    assert "echo/val_loss" in summary["final"]  # its module logged under its name
    assert (stage / "note.txt").read_text() == "hello from outside"  # its own `run` ran
    assert json.loads((stage / "stage.json").read_text())["complete"]
    assert (stage / "checkpoints" / "last.ckpt").is_file()
    assert AutoModelForCausalLM.from_pretrained(stage / "hf").config.vocab_size > 0


def test_an_outside_stage_has_its_check_in_the_preflight(outside, tmp_path):
    r = fit(outside, tmp_path, "stage.note=''", "on_nonfinite=maybe")
    assert r.returncode == 2, r.stderr[-3000:]
    assert "stage.note is empty: the echo stage writes it" in r.stderr
    assert "on_nonfinite='maybe'" in r.stderr  # reported together, in one error
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "echo").exists()  # nothing was built


def test_the_planner_plans_an_outside_stage(outside):
    r = chimed_lit(outside, "plan", "stage=echo", "echo.trainer.max_steps=5", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    stages = json.loads(r.stdout)["stages"]
    assert [s["stage"] for s in stages] == ["echo"]  # needs nothing
    assert stages[0]["kind"] == "causal_lm"  # the Stage default it inherits
