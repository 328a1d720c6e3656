"""The 13B recipe and the data/model presets compose (nothing downloaded) with the stated values."""

from __future__ import annotations

import pytest
from hydra import compose

from chimed_lit.planning.model_size import config_dict, measure
from chimed_lit.run.stage_configs import stage_configs


@pytest.fixture(scope="module")
def recipe():
    """Every stage of `experiment=chimed_gpt_13b`, composed as the pipeline composes it."""
    return dict(stage_configs(["stage=rlhf", "experiment=chimed_gpt_13b"]))


def test_recipe_covers_the_regime_in_order(recipe):
    assert list(recipe) == ["pretrain", "sft", "reward", "rlhf"]
    for cfg in recipe.values():  # run-wide values hold in every stage
        assert cfg.model.pretrained == "IDEA-CCNL/Ziya2-13B-Base"
        assert cfg.model.gradient_checkpointing is True
        assert cfg.trainer.precision == "bf16-mixed" and cfg.trainer.devices == 8
        assert cfg.strategy.zero_stage in (2, 3)


def test_recipe_sft_is_the_papers(recipe):
    sft = recipe["sft"]
    assert sft.strategy.zero_stage == 2 and sft.strategy.offload_optimizer is False
    assert sft.optimizer.lr == 1e-4 and list(sft.optimizer.betas) == [0.9, 0.98]
    assert sft.optimizer.eps == 1e-8 and sft.optimizer.weight_decay == 1e-4
    assert sft.scheduler.warmup_ratio == 0.01 and sft.scheduler.warmup_steps is None
    assert sft.data.max_length == 1024 and sft.trainer.max_epochs == 8
    assert sft.data.batch_size * sft.trainer.accumulate_grad_batches * sft.trainer.devices == 16
    assert sft.trainer.gradient_clip_val == 1.0
    assert sft.strategy.config.gradient_clipping == 1.0  # the DeepSpeed JSON follows the trainer
    assert (list(sft.data.train_files), sft.data.hub_subset, sft.data.max_records) == (
        ["shibing624/medical"],
        "finetune",
        100000,
    )


def test_recipe_stage_values_stay_in_their_stage(recipe):
    assert (
        recipe["pretrain"].optimizer.lr == 5e-5 and recipe["pretrain"].data.hub_subset == "pretrain"
    )
    assert recipe["reward"].data.hub_subset == "reward"
    rlhf = recipe["rlhf"]
    assert rlhf.stage.algorithm == "rejection_sampling" and rlhf.strategy.zero_stage == 3
    assert rlhf.trainer.gradient_clip_val is None  # PPO/rejection clip inside their own step


def test_command_line_beats_the_recipe_for_the_target_stage():
    cfgs = dict(stage_configs(["stage=sft", "experiment=chimed_gpt_13b", "optimizer.lr=3e-5"]))
    assert list(cfgs) == ["pretrain", "sft"]
    assert cfgs["sft"].optimizer.lr == 3e-5 and cfgs["sft"].optimizer.betas[1] == 0.98
    assert cfgs["pretrain"].optimizer.lr == 5e-5


@pytest.mark.parametrize(
    ("preset", "stage", "subset", "target"),
    [
        ("cmd_pretrain", "pretrain", "pretrain", "PretrainDataModule"),
        ("cmd_sft", "sft", "finetune", "SFTDataModule"),
        ("cmd_reward", "reward", "reward", "PreferenceDataModule"),
    ],
)
def test_cmd_presets_name_the_hub_subsets(hydra_ctx, preset, stage, subset, target):
    cfg = compose(config_name="fit", overrides=[f"stage={stage}", f"data={preset}"])
    assert list(cfg.data.train_files) == ["shibing624/medical"]
    assert cfg.data.hub_subset == subset and cfg.data.hub_split == "train"
    assert cfg.data._target_.endswith(target)
    if preset == "cmd_sft":
        assert cfg.data.max_records == 100000 and cfg.data.format == "alpaca"


@pytest.mark.parametrize("preset", ["chimed_sft", "chimst_sft"])
def test_contract_only_presets_require_a_path(hydra_ctx, preset):
    from omegaconf import OmegaConf

    cfg = compose(config_name="fit", overrides=["stage=sft", f"data={preset}"])
    assert OmegaConf.missing_keys(cfg) == {"data.train_files"}
    given = compose(
        config_name="fit",
        overrides=["stage=sft", f"data={preset}", "data.train_files=[/my/copy.jsonl]"],
    )
    assert list(given.data.train_files) == ["/my/copy.jsonl"]


@pytest.mark.parametrize(
    ("model", "billions"),
    [
        ("qwen2_5_0_5b", 0.494),
        ("qwen2_5_7b", 7.616),
        ("ziya2_13b", 13.092),
        ("chimed_gpt_13b", 13.092),
    ],
)
def test_model_presets_are_sized_offline(hydra_ctx, model, billions):
    cfg = compose(config_name="fit", overrides=[f"model={model}"])
    assert measure(config_dict(cfg.model)).params / 1e9 == pytest.approx(billions, abs=0.001)
