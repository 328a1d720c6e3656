"""What the planner reads from a composed config (`Stage.plan_setup`, as `chimed-lit plan` reads
it through the registry): strategy presets, devices, checkpointing, each stage's own fields."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from chimed_lit.io.errors import ConfigError
from chimed_lit.planning.memory import Sharding
from chimed_lit.run.registry import stage_of


def stage_setup(cfg):
    return stage_of(cfg).plan_setup(cfg)


@pytest.fixture(scope="module")
def fit():
    GlobalHydra.instance().clear()
    with initialize_config_module("chimed_lit.configs", version_base="1.3"):
        yield lambda *o: compose(config_name="fit", overrides=list(o))
    GlobalHydra.instance().clear()


@pytest.mark.parametrize(
    ("preset", "sharding", "deepspeed"),
    [
        ("auto", Sharding(0), False),
        ("ddp", Sharding(0), False),
        ("fsdp2", Sharding(3), False),
        ("deepspeed_zero1", Sharding(1), True),
        ("deepspeed_zero2", Sharding(2), True),
        ("deepspeed_zero3", Sharding(3), True),
        ("deepspeed_zero3_offload", Sharding(3, True, True), True),
    ],
)
def test_every_strategy_preset_maps_to_a_zero_stage(fit, preset, sharding, deepspeed):
    st = stage_setup(
        fit(
            f"strategy={preset}",
            "trainer.devices=4",
            "trainer.precision=bf16-mixed",
            "model.dtype=bfloat16",
        )
    )
    assert st.sharding == sharding and st.gpus == 4
    # DeepSpeed's bf16 layout is 2 + 6 + 12 bytes per parameter; torch keeps AdamW in bf16
    assert (st.layout.weights, st.layout.grads, st.layout.optimizer) == (
        (2, 6, 12) if deepspeed else (2, 2, 4)
    )


def test_stage_batch_length_and_checkpointing(fit):
    st = stage_setup(
        fit(
            "stage=sft",
            "data.batch_size=3",
            "data.max_length=512",
            "trainer.accumulate_grad_batches=2",
            "model.gradient_checkpointing=true",
        )
    )
    assert (st.kind, st.micro_batch, st.seq_len, st.global_batch, st.checkpointing) == (
        "causal_lm",
        3,
        512,
        6,
        True,
    )
    ppo = stage_setup(fit("stage=rlhf", "data.max_length=100", "stage.module.minibatch_size=4"))
    assert (ppo.kind, ppo.rollout_tokens, ppo.minibatch) == ("ppo", 100 + 48, 4)
    rs = stage_setup(fit("stage=rlhf", "stage.algorithm=rejection_sampling", "data.batch_size=2"))
    assert (rs.kind, rs.rollout_batch, rs.minibatch) == ("rejection_sampling", 2 * 4, 0)
    simpo = stage_setup(fit("stage=dpo", "stage.module.loss_type=simpo"))
    assert (simpo.kind, simpo.dpo_reference) == ("dpo", False)
    assert stage_setup(fit("stage=reward")).kind == "reward"


def test_devices_must_be_a_count(fit):
    with pytest.raises(ConfigError, match="trainer.devices='auto'"):
        stage_setup(fit("trainer.devices=auto"))


def test_an_unknown_memory_layout_is_refused_not_planned_as_a_causal_lm(fit):
    from chimed_lit.planning.setup import stage_setup as read_setup

    with pytest.raises(ValueError, match="plan_kind='mcts' is no memory layout"):
        read_setup(fit("stage=sft"), "mcts")
    assert read_setup(fit("stage=sft"), "causal_lm").kind == "causal_lm"
