"""The stage registry: each stage YAML selects its class by `stage.spec._target_`, RL algorithms
by `stage.algorithm`, and nothing else in the package decides what a stage is by its name."""

from __future__ import annotations

import re

import pytest
from hydra import compose

from chimed_lit.io.errors import ConfigError
from chimed_lit.run.pipeline import direct_needs
from chimed_lit.run.registry import stage_names, stage_of
from chimed_lit.stages import Stage
from chimed_lit.stages.dpo import DPO
from chimed_lit.stages.ppo import PPO
from chimed_lit.stages.pretrain import Pretrain
from chimed_lit.stages.rejection_sampling import RejectionSampling
from chimed_lit.stages.reward import Reward
from chimed_lit.stages.sft import SFT
from tests.architecture.import_graph import ROOT


def fit(*overrides: str):
    return compose(config_name="fit", overrides=list(overrides))


def test_every_shipped_stage_yaml_selects_its_class(hydra_ctx):
    classes = {"pretrain": Pretrain, "sft": SFT, "reward": Reward, "dpo": DPO, "rlhf": PPO}
    assert set(stage_names()) == set(classes)
    for name, cls in classes.items():
        stage = stage_of(fit(f"stage={name}"))
        assert type(stage) is cls and isinstance(stage, Stage), name


def test_the_rl_algorithm_is_chosen_by_name_or_module_path(hydra_ctx):
    rs = fit("stage=rlhf", "stage.algorithm=rejection_sampling")
    assert type(stage_of(rs)) is RejectionSampling
    assert type(stage_of(fit("stage=rlhf", "stage.algorithm=chimed_lit.stages.ppo"))) is PPO
    assert type(stage_of(fit("stage=rlhf", "stage.algorithm=dapo"))).__name__ == "DAPO"
    with pytest.raises(ConfigError, match=r"stage.algorithm=grpp: no such algorithm.*dapo, "):
        stage_of(fit("stage=rlhf", "stage.algorithm=grpp"))


def test_a_config_without_a_stage_class_says_which_key(hydra_ctx):
    with pytest.raises(ConfigError, match=r"stage sft: stage.spec is not set"):
        stage_of(fit("stage=sft", "~stage.spec"))
    with pytest.raises(ConfigError, match=r"made a Sharding, not a chimed_lit.stages.Stage"):
        stage_of(fit("stage=sft", "stage.spec._target_=chimed_lit.planning.memory.Sharding"))


def test_each_stage_declares_what_it_needs(hydra_ctx):
    assert direct_needs(fit("stage=sft")) == ["pretrain"]
    assert direct_needs(fit("stage=sft"), cli_pretrained=True) == []  # model.pretrained instead
    assert direct_needs(fit("stage=rlhf"), cli_pretrained=True) == ["sft", "reward"]
    assert direct_needs(fit("stage=rlhf", "stage.policy=/p")) == ["reward"]
    rs = fit("stage=rlhf", "stage.algorithm=rejection_sampling", "stage.reward_model=/r")
    assert direct_needs(rs) == ["sft"]


def test_no_module_outside_the_stages_switches_on_a_stage_kind():
    """What a stage is lives in its module: no `model_kind` key, no comparison of a stage's
    name or algorithm, nor of any value, with a stage's name anywhere outside `stages/` (the
    planner's `kind`, one of `planning.setup.PLAN_KINDS`, names a memory layout, not a stage)."""
    names = "pretrain|sft|reward|dpo|rlhf|ppo|rejection_sampling"
    switch = re.compile(
        r"model_kind|stage\.name\s*[=!]=|algorithm\"?\)?\s*[=!]="
        rf"|([=!]=|\bin)\s*\(?[\"']({names})[\"']"
    )
    layout = re.compile(r"\bkind\s*(==|!=|in\b)")
    places = ["src/chimed_lit", "plugins", "callbacks", "configs"]
    found = [
        f"{p.relative_to(ROOT)}:{i}"
        for place in places
        for p in sorted((ROOT / place).rglob("*"))
        if p.suffix in (".py", ".yaml") and "stages" not in p.relative_to(ROOT).parts
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if switch.search(line) and not layout.search(line)
    ]
    assert found == []
