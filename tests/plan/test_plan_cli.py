"""`chimed-lit plan` end to end: composes the recipe, prints tables, verdicts and advice."""

from __future__ import annotations

import json

import pytest
from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs


def _stages(result) -> dict:
    assert result.code == 0, result.err
    return {s["stage"]: s for s in json.loads(result.out)["stages"]}


def test_13b_recipe_on_8_gpus(run_cli):
    stages = _stages(run_cli("plan", "experiment=chimed_gpt_13b", "trainer.devices=8", "--json"))
    assert list(stages) == ["pretrain", "sft", "reward", "rlhf"]
    sft = stages["sft"]
    assert (sft["gpus"], sft["sharding"], sft["micro_batch"], sft["seq_len"]) == (
        8,
        "ZeRO-2",
        2,
        1024,
    )
    params = sft["models"][0]["params"]
    theirs = estimate_zero2_model_states_mem_needs(params, 8, 1, cpu_offload=False)[1] / 2**30
    assert sft["model_states_gib"]["ZeRO-2"]["trained"] == pytest.approx(theirs, rel=0.05)
    assert sft["model_states_gib"]["ZeRO-2"]["deepspeed"] == pytest.approx(theirs, rel=1e-3)
    assert theirs == pytest.approx(51.5, rel=0.05)
    # the verdict is the sum: model states + activations of 2 x 1024 tokens with checkpointing
    for s in stages.values():
        assert s["peak_gib"] == pytest.approx(
            sum(x["gib"] for x in s["lines"] if x["phase"] in ("persistent", s["peak_phase"])),
            abs=0.01,
        )
        assert s["fits"] == (s["peak_gib"] <= 80 - 2)
    assert sft["fits"] and 51.5 < sft["peak_gib"] < 56
    rlhf = stages["rlhf"]
    assert rlhf["kind"] == "rejection_sampling" and rlhf["sharding"] == "ZeRO-3"


def test_ppo_four_models_do_not_fit_zero2_and_advice_fits(run_cli):
    stages = _stages(
        run_cli(
            "plan",
            "experiment=chimed_gpt_13b",
            "stage.algorithm=ppo",
            "strategy.zero_stage=2",
            "--json",
        )
    )
    ppo = stages["rlhf"]
    assert [m["role"] for m in ppo["models"]] == ["actor", "critic", "reference", "reward"]
    assert any(x["label"].startswith("rollout KV cache") for x in ppo["lines"])
    # actor + critic ZeRO-2 states alone are about 2 x 51.5 GiB
    assert ppo["model_states_gib"]["ZeRO-2"]["trained"] > 100
    assert not ppo["fits"] and ppo["changes"] and ppo["peak_after_gib"] <= 78
    assert stages["sft"]["sharding"] == "ZeRO-2"  # the target's overrides stay in the target


def test_text_table_and_smallest_change(run_cli):
    r = run_cli("plan", "experiment=chimed_gpt_13b", "stage=sft", "plan.gpu_memory_gib=48")
    assert r.code == 0, r.err
    assert "== pretrain" in r.out and "== sft" in r.out and "== reward" not in r.out
    sft = r.out[r.out.index("== sft") :]
    assert "ZeRO-2 <" in sft and "checkpointing off 13.62, checkpointing on 1.45" in sft
    assert "does not fit: 53.3 GiB of 46.0 GiB" in sft
    assert (
        "Smallest change that fits: use DeepSpeed ZeRO-3 -> 29.6 GiB (strategy=deepspeed_zero3)"
        in sft
    )


def test_missing_chimed_path_and_bad_plan_key_error_clearly(run_cli):
    r = run_cli("plan", "stage=sft", "data=chimed_sft", "plan.gpu_memory=80")
    assert r.code == 2 and "unknown key 'plan.gpu_memory'" in r.err
    r = run_cli("plan", "stage=sft", "data=chimed_sft")
    assert r.code == 2 and "Traceback" not in r.err
    assert "data.train_files is required for the sft stage" in r.err


def test_json_output_is_clean_json_in_a_fresh_process(tmp_path):
    """DeepSpeed logs to stdout when first imported; --json must still print only JSON."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "chimed_lit",
            "plan",
            "stage=pretrain",
            "strategy=deepspeed_zero2",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    stages = json.loads(out.stdout)["stages"]
    assert [s["stage"] for s in stages] == ["pretrain"] and stages[0]["sharding"] == "ZeRO-2"
    assert stages[0]["model_states_gib"]["ZeRO-2"]["deepspeed"] is not None
