"""The verdict and the smallest change that fits, on a 13B SFT setup built by hand."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chimed_lit.planning.advice import advise
from chimed_lit.planning.known_models import KNOWN
from chimed_lit.planning.memory import GIB, Sharding, state_bytes
from chimed_lit.planning.model_size import measure
from chimed_lit.planning.setup import StageSetup
from chimed_lit.planning.stage_plan import plan_stage

LM = measure(KNOWN["IDEA-CCNL/Ziya2-13B-Base"])
RM = measure(KNOWN["IDEA-CCNL/Ziya2-13B-Base"], "reward")
SFT = StageSetup(
    stage="sft",
    kind="causal_lm",
    gpus_per_node=8,
    nodes=1,
    strategy="deepspeed",
    sharding=Sharding(2),
    layout=state_bytes(True, "bf16-mixed", "bfloat16"),
    checkpointing=False,
    fused_attention=True,
    micro_batch=2,
    seq_len=1024,
)


def peak(st: StageSetup) -> float:
    return plan_stage(st, LM, RM).peak


def test_zero2_without_checkpointing_fits_80gb_as_the_sum_says():
    plan = plan_stage(SFT, LM, RM)
    assert plan.peak == pytest.approx(sum(x.bytes for x in plan.lines))
    # 51.8 GiB model states + 13.6 GiB activations (34sbh x 40 layers + output) = 65.4 GiB
    assert plan.peak / GIB == pytest.approx(65.4, abs=0.1)
    assert advise(SFT, peak, 78 * GIB).fits


def test_checkpointing_is_the_first_change_tried():
    a = advise(SFT, peak, 60 * GIB)
    assert not a.fits
    assert [c.overrides for c in a.changes] == [("model.gradient_checkpointing=true",)]
    assert a.peak_after < 60 * GIB < a.peak


def test_zero3_when_model_states_alone_do_not_fit():
    a = advise(replace(SFT, checkpointing=True), peak, 40 * GIB)
    assert [c.overrides for c in a.changes] == [("strategy=deepspeed_zero3",)]
    assert a.peak_after / GIB == pytest.approx(28.19 + 1.45, abs=0.05)


def test_offload_advice_also_gives_the_gpus_that_fit_without_it():
    a = advise(SFT, peak, 20 * GIB)
    assert [c.overrides for c in a.changes] == [
        (
            "strategy=deepspeed_zero3",
            "strategy.offload_optimizer=true",
            "strategy.offload_parameters=false",
        )
    ]
    assert a.peak_after < 20 * GIB
    # ZeRO-3, checkpointing, micro-batch 1 on N GPUs: 18 x 13.09e9 / N bytes + 0.75 GiB gather
    # + 0.73 GiB activations <= 20 GiB needs N >= 12.7: the next power of two is 16
    assert a.gpus_needed == 16


def test_nothing_fits_below_the_gather_buffer():
    a = advise(SFT, peak, 0.5 * GIB)  # full offload still holds the 0.75 GiB gather buffer
    assert not a.fits and a.peak_after is None and a.gpus_needed is None
    assert "whatever is changed" in a.words()


def test_ppo_holds_four_models_and_a_kv_cache():
    ppo = replace(SFT, stage="rlhf", kind="ppo", rollout_batch=8, rollout_tokens=1024, minibatch=2)
    plan = plan_stage(ppo, LM, RM)
    assert [(r, h) for r, h, _ in plan.models] == [
        ("actor", "trained"),
        ("critic", "trained"),
        ("reference", "frozen"),
        ("reward", "frozen"),
    ]
    # ZeRO-2: actor and critic states 2 + 18/8 bytes/param, frozen bf16 weights replicated
    assert plan.trained["ZeRO-2"] == pytest.approx((2 + 18 / 8) * (LM.params + RM.params))
    assert plan.frozen["ZeRO-2"] == pytest.approx(2 * (LM.params + RM.params))
    kv = [x for x in plan.lines if x.phase == "rollout"]
    assert kv[0].bytes == 2 * 40 * 40 * 128 * 1024 * 8 * 2
    assert not advise(ppo, peak, 78 * GIB).fits  # four 13B models do not fit ZeRO-2 on 8x80GB


def test_dpo_holds_a_frozen_reference_unless_reference_free():
    dpo = replace(SFT, stage="dpo", kind="dpo")
    plan = plan_stage(dpo, LM, RM)
    assert [(r, h) for r, h, _ in plan.models] == [("policy", "trained"), ("reference", "frozen")]
    assert plan.frozen["ZeRO-2"] == 2 * LM.params  # bf16 weights, replicated below ZeRO-3
    # chosen and rejected rows: twice the activations of SFT at the same micro-batch
    assert plan.phases["train"] == pytest.approx(2 * plan_stage(SFT, LM, RM).phases["train"])
    simpo = plan_stage(replace(dpo, dpo_reference=False), LM, RM)
    assert [r for r, _, _ in simpo.models] == ["policy"]
