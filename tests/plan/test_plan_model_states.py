"""Model-state memory against DeepSpeed's own estimators and the ZeRO paper's accounting."""

from __future__ import annotations

import pytest
from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

from chimed_lit.planning.known_models import KNOWN
from chimed_lit.planning.memory import GIB, Sharding, state_bytes, trained_states
from chimed_lit.planning.model_size import measure

DS_BF16 = state_bytes(deepspeed=True, precision="bf16-mixed", dtype="bfloat16")

# (Hub id, parameters counted by hand from the published config.json)
SIZES = [
    # Qwen2.5-0.5B: tied embeddings 151936*896; per layer q/k/v/o with qkv bias, 3 MLP mats, 2 norms
    (
        "Qwen/Qwen2.5-0.5B-Instruct",
        151936 * 896
        + 24 * (896 * 896 + 896 + 2 * (896 * 128 + 128) + 896 * 896 + 3 * 896 * 4864 + 2 * 896)
        + 896,
    ),
    (
        "Qwen/Qwen2.5-7B-Instruct",
        2 * 152064 * 3584
        + 28
        * (3584 * 3584 + 3584 + 2 * (3584 * 512 + 512) + 3584 * 3584 + 3 * 3584 * 18944 + 2 * 3584)
        + 3584,
    ),
    # Ziya2-13B (LLaMA-2): untied 39424 x 5120 embedding and head, 40 layers, no biases
    (
        "IDEA-CCNL/Ziya2-13B-Base",
        2 * 39424 * 5120 + 40 * (4 * 5120 * 5120 + 3 * 5120 * 13824 + 2 * 5120) + 5120,
    ),
]


@pytest.mark.parametrize(("hub_id", "by_hand"), SIZES, ids=[s[0] for s in SIZES])
def test_meta_device_count_matches_hand_count(hub_id, by_hand):
    shape = measure(KNOWN[hub_id])
    assert shape.params == by_hand
    # the largest single module is the (input) embedding: vocab x hidden
    assert shape.largest_layer_params == KNOWN[hub_id]["vocab_size"] * KNOWN[hub_id]["hidden_size"]


@pytest.mark.parametrize("gpus", [8, 16])
@pytest.mark.parametrize(("hub_id", "by_hand"), SIZES, ids=[s[0] for s in SIZES])
def test_table_within_5_percent_of_deepspeed(hub_id, by_hand, gpus):
    """Three sizes x ZeRO-2/3 with and without offload: ours vs DeepSpeed's estimators."""
    shape = measure(KNOWN[hub_id])
    p, big = shape.params, shape.largest_layer_params
    for offload in (False, True):
        ours2 = trained_states(p, big, gpus, Sharding(2, offload), DS_BF16).total
        theirs2 = estimate_zero2_model_states_mem_needs(p, gpus, 1, cpu_offload=offload)[1]
        assert ours2 == pytest.approx(theirs2, rel=0.05)
        ours3 = trained_states(p, big, gpus, Sharding(3, offload, offload), DS_BF16).total
        theirs3 = estimate_zero3_model_states_mem_needs(
            p, big, gpus, 1, cpu_offload=offload, cpu_offload_params=offload
        )[1]
        assert ours3 == pytest.approx(theirs3, rel=0.05)


def test_13b_on_8_gpus_matches_the_issue_figures():
    """Issue 6: ZeRO-2 about 51.5 GiB/GPU, ZeRO-3 about 27.9 GiB/GPU without offload."""
    shape = measure(KNOWN["IDEA-CCNL/Ziya2-13B-Base"])
    z2 = trained_states(shape.params, shape.largest_layer_params, 8, Sharding(2), DS_BF16)
    z3 = trained_states(shape.params, shape.largest_layer_params, 8, Sharding(3), DS_BF16)
    assert z2.total / GIB == pytest.approx(51.5, rel=0.05)
    assert z3.total / GIB == pytest.approx(27.9, rel=0.05)
    # the ZeRO-2 breakdown: 2 bytes of bf16 weights replicated, 18 bytes sharded over 8
    assert z2.params == 2 * shape.params
    assert z2.grads + z2.optimizer == pytest.approx(18 * shape.params / 8)


def test_sharding_order_and_stage0():
    """Each ZeRO stage shards one more kind of state; DDP (stage 0) holds all 20 bytes."""
    p, n = 1_000_000, 4
    totals = [trained_states(p, 0, n, Sharding(z), DS_BF16).total for z in (0, 1, 2, 3)]
    assert totals == [20 * p, 8 * p + 12 * p / n, 2 * p + 18 * p / n, 18 * p / n]


def test_torch_layout_follows_the_model_dtype():
    """Without DeepSpeed, AdamW keeps both moments in the parameters' dtype."""
    assert state_bytes(False, "bf16-mixed", "float32") == state_bytes(False, "32-true", "float32")
    fp32 = trained_states(10, 0, 1, Sharding(0), state_bytes(False, "32-true", "float32"))
    bf16 = trained_states(10, 0, 1, Sharding(0), state_bytes(False, "bf16-true", "bfloat16"))
    assert (fp32.total, bf16.total) == (160, 80)
