"""Every strategy preset builds, and the DeepSpeed JSON is derived from the trainer/data config."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

PRESETS = [
    "auto",
    "ddp",
    "fsdp2",
    "deepspeed_zero1",
    "deepspeed_zero2",
    "deepspeed_zero3",
    "deepspeed_zero3_offload",
]


def _compose(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_module("chimed_lit.configs", version_base="1.3"):
        cfg = compose(config_name="fit", overrides=list(overrides))
    GlobalHydra.instance().clear()
    return cfg


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_builds_the_strategy_it_names(preset):
    from lightning.pytorch.strategies import DDPStrategy, ModelParallelStrategy

    from chimed_lit.plugins.deepspeed import ChimedDeepSpeedStrategy

    strategy = instantiate(_compose("stage=sft", f"strategy={preset}").strategy)
    expected = {"auto": str, "ddp": DDPStrategy, "fsdp2": ModelParallelStrategy}.get(
        preset, ChimedDeepSpeedStrategy
    )
    assert isinstance(strategy, expected)
    if preset == "auto":
        assert strategy == "auto"


@pytest.mark.parametrize(
    "preset,stage,opt,par",
    [
        ("deepspeed_zero1", 1, False, False),
        ("deepspeed_zero2", 2, False, False),
        ("deepspeed_zero3", 3, False, False),
        ("deepspeed_zero3_offload", 3, True, True),
    ],
)
def test_deepspeed_json_follows_trainer_and_data(preset, stage, opt, par):
    cfg = _compose(
        "stage=sft",
        f"strategy={preset}",
        "data.batch_size=6",
        "trainer.accumulate_grad_batches=3",
        "trainer.gradient_clip_val=0.5",
    )
    ds = instantiate(cfg.strategy).config
    assert ds["train_micro_batch_size_per_gpu"] == 6
    assert ds["gradient_clipping"] == 0.5
    assert "gradient_accumulation_steps" not in ds  # Lightning sets it from the trainer
    zero = ds["zero_optimization"]
    assert zero["stage"] == stage
    assert ("offload_optimizer" in zero) == opt and ("offload_param" in zero) == par
    if opt:
        assert zero["offload_optimizer"]["device"] == "cpu"
        assert ds["zero_force_ds_cpu_optimizer"] is False
    assert ds["zero_allow_untested_optimizer"] is True


def test_zero_config_problems_words_each_impossible_choice_for_the_config_keys():
    from chimed_lit.plugins.deepspeed import zero_config_problems

    for stage in (1, 2, 3):
        assert zero_config_problems(stage, False, False) == []
        assert zero_config_problems(stage, False, True) == []  # optimizer offload: any stage
    assert zero_config_problems(3, True, True) == []
    assert zero_config_problems(4, False, False) == [
        "strategy.zero_stage=4: DeepSpeed ZeRO stages are 1, 2 and 3"
    ]
    assert zero_config_problems(None, True, False) == [
        "strategy.zero_stage=None: DeepSpeed ZeRO stages are 1, 2 and 3"
    ]
    assert zero_config_problems(2, True, False) == [
        (
            "strategy.offload_parameters=true needs strategy.zero_stage=3 "
            "(use strategy=deepspeed_zero3_offload)"
        )
    ]


def test_the_strategy_builder_refuses_an_impossible_zero_choice_with_those_words():
    from chimed_lit.io.errors import ConfigError
    from chimed_lit.plugins.deepspeed import deepspeed, zero_config

    with pytest.raises(ConfigError) as e:
        deepspeed({}, zero_stage=2, offload_parameters=True)
    assert e.value.problems == [
        (
            "strategy.offload_parameters=true needs strategy.zero_stage=3 "
            "(use strategy=deepspeed_zero3_offload)"
        )
    ]
    with pytest.raises(ConfigError, match="strategy.zero_stage=4: DeepSpeed ZeRO stages"):
        zero_config(4)


def test_cfg_job_shows_the_resolved_deepspeed_json(run_cli, tmp_path):
    r = run_cli(
        "fit",
        "stage=sft",
        "strategy=deepspeed_zero2",
        "data.batch_size=5",
        "trainer.accumulate_grad_batches=2",
        f"paths.output_dir={tmp_path}",
        "--cfg",
        "job",
        "--resolve",
    )
    assert r.code == 0, r.err
    block = r.out.split("strategy:", 1)[1]
    assert "zero_stage: 2" in block
    assert "train_micro_batch_size_per_gpu: 5" in block
    assert "gradient_accumulation_steps: 2" in block
    assert "gradient_clipping: 1.0" in block


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["strategy=deepspeed_zero2", "strategy.offload_parameters=true"],
            "strategy.offload_parameters=true needs strategy.zero_stage=3",
        ),
        (
            ["strategy=deepspeed_zero2", "strategy.zero_stage=4"],
            "strategy.zero_stage=4: DeepSpeed ZeRO stages are 1, 2 and 3",
        ),
        (["stage=rlhf", "strategy=deepspeed_zero2"], "add rlhf.strategy=fsdp2"),
    ],
)
def test_impossible_strategy_combinations_fail_before_training(run_cli, tmp_path, args, message):
    r = run_cli("fit", f"paths.output_dir={tmp_path}", "logger=none", *args)
    assert r.code != 0
    assert message in r.err
    assert "Traceback" not in r.err
    assert not (tmp_path / "pretrain").exists()  # nothing trained, nothing half-written


def test_a_target_stage_prefix_keeps_a_run_wide_key_to_that_stage(tmp_path):
    """`rlhf.strategy=ddp` must not reach the upstream stages, `strategy=` must."""
    from chimed_lit.cli.argv import routed_texts

    routed = routed_texts(
        ["stage=rlhf", "strategy=deepspeed_zero2", "rlhf.strategy=ddp", "rlhf.trainer.max_steps=3"]
    )
    assert routed == [
        "stage=rlhf",
        "strategy=deepspeed_zero2",
        "++stage_overrides.rlhf.strategy=ddp",
        "trainer.max_steps=3",
    ]
