"""One preflight per `fit`: every check of every planned stage runs once, before anything is
built, and every problem is reported in one error."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose
from omegaconf import DictConfig

from chimed_lit.cli.argv import routed_texts
from chimed_lit.io.errors import ConfigError
from chimed_lit.run.pipeline import run_pipeline
from chimed_lit.run.preflight import preflight
from chimed_lit.stages.pretrain import Pretrain
from chimed_lit.stages.sft import SFT

HERE = "tests.architecture.test_preflight"


class CountingPretrain(Pretrain):
    """The pretrain stage, counting how often its own checks run."""

    checked = 0

    def problems(self, cfg: DictConfig) -> list[str]:
        type(self).checked += 1
        return super().problems(cfg)


class CountingSFT(SFT):
    checked = 0

    def problems(self, cfg: DictConfig) -> list[str]:
        type(self).checked += 1
        return super().problems(cfg)


class Spy:
    """The real preflight, counting its calls and keeping the stages it saw."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, stages: list[tuple[str, DictConfig]]) -> None:
        self.calls.append([name for name, _ in stages])
        preflight(stages)


def pipeline(tmp_path: Path, spy: Spy, *args: str) -> dict:
    """`chimed-lit fit ARGS` as the Hydra app runs it (the caller holds `hydra_ctx`)."""
    overrides = routed_texts([f"paths.output_dir={tmp_path}", "logger=none", *args])
    return run_pipeline(compose(config_name="fit", overrides=overrides), overrides, check=spy)


def test_problems_of_two_stages_come_in_one_error_before_anything_runs(hydra_ctx, tmp_path):
    spy = Spy()
    with pytest.raises(ConfigError) as e:
        pipeline(tmp_path, spy, "stage=dpo", "stage.module.loss_type=kto", "sft.on_nonfinite=no")
    assert spy.calls == [["pretrain", "sft", "dpo"]]
    assert e.value.problems == [
        "on_nonfinite='no': use one of stop, skip (in the sft stage config)",
        "stage.module.loss_type='kto': use one of sigmoid, ipo, hinge, orpo, simpo",
    ]
    assert list(tmp_path.iterdir()) == []  # no stage built or wrote anything


def test_a_problem_every_stage_shares_is_listed_once(hydra_ctx, tmp_path):
    with pytest.raises(ConfigError) as e:
        pipeline(tmp_path, Spy(), "stage=sft", "strategy=deepspeed_zero2", "strategy.zero_stage=4")
    assert e.value.problems == ["strategy.zero_stage=4: DeepSpeed ZeRO stages are 1, 2 and 3"]


def test_a_stage_class_that_cannot_be_made_is_a_preflight_problem(hydra_ctx, tmp_path):
    spy = Spy()
    with pytest.raises(ConfigError) as e:
        pipeline(
            tmp_path,
            spy,
            "stage=sft",
            "stage.spec._target_=no_such.Stage",
            "pretrain.on_nonfinite=no",
        )
    assert spy.calls == [["pretrain", "sft"]]  # planned with the YAML's needs, then checked
    assert len(e.value.problems) == 2  # reported together with the other stage's problem
    assert (
        e.value.problems[0]
        == "on_nonfinite='no': use one of stop, skip (in the pretrain stage config)"
    )
    assert e.value.problems[1].startswith("stage.spec._target_='no_such.Stage' of stage sft")
    assert list(tmp_path.iterdir()) == []


def test_each_check_runs_once_per_command_also_while_stages_train(hydra_ctx, tmp_path, one_thread):
    CountingPretrain.checked = CountingSFT.checked = 0
    spy = Spy()
    summary = pipeline(
        tmp_path,
        spy,
        "stage=sft",
        f"stage.spec._target_={HERE}.CountingSFT",
        f"pretrain.stage.spec._target_={HERE}.CountingPretrain",
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "pretrain.trainer.max_steps=2",
        "pretrain.trainer.val_check_interval=2",
    )
    assert summary["stage"] == "sft" and summary["global_step"] == 2  # both stages trained
    assert (tmp_path / "pretrain" / "hf").is_dir() and (tmp_path / "sft" / "hf").is_dir()
    assert spy.calls == [["pretrain", "sft"]]
    assert (CountingPretrain.checked, CountingSFT.checked) == (1, 1)


def test_the_rounds_a_stage_trains_itself_are_checked_with_the_plan(hydra_ctx, tmp_path):
    """Rejection sampling from given models plans no sft stage, yet trains SFT rounds: their
    config (with `sft.` overrides) is in the one preflight, not found after round 0 sampled."""
    spy = Spy()
    with pytest.raises(ConfigError) as e:
        pipeline(
            tmp_path,
            spy,
            "stage=rlhf",
            "stage.algorithm=rejection_sampling",
            f"stage.policy={tmp_path}/policy",
            f"stage.reward_model={tmp_path}/reward",
            "sft.on_nonfinite=no",
        )
    assert spy.calls == [["rlhf sft round", "rlhf"]]
    assert e.value.problems == [
        "on_nonfinite='no': use one of stop, skip (in the rlhf sft round stage config)"
    ]
    assert list(tmp_path.iterdir()) == []


def test_a_value_an_upstream_stage_leaves_unset_names_the_argument_that_sets_it(
    hydra_ctx, tmp_path
):
    with pytest.raises(ConfigError) as e:
        pipeline(tmp_path, Spy(), "stage=reward", "sft.data=chimed_sft")
    assert e.value.problems == [
        (
            "data.train_files is required for the sft stage (set sft.data.train_files=... on "
            "the command line) (in the sft stage config)"
        )
    ]
