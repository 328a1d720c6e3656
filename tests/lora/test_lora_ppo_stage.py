"""PPO with `lora=on` from the default regime's SFT and reward models: it runs, raises the
reward as issue 5 asks of full PPO, and exports the merged policy and the adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.stages.test_rlhf_stage import assert_reward_rises_within_kl_bound


@pytest.mark.slow
def test_ppo_with_lora_raises_reward(run_cli, regime, tmp_path):
    # LoRA wants a learning rate about 10x the full fine-tuning one (README, DPO and LoRA)
    r = run_cli(
        "fit",
        "stage=rlhf",
        "lora=on",
        f"paths.output_dir={tmp_path}",
        "logger=csv",
        f"stage.policy={regime / 'sft' / 'hf'}",
        f"stage.reward_model={regime / 'reward' / 'hf'}",
        "trainer.log_every_n_steps=1",
        "stage.module.actor_optimizer.lr=1.5e-3",
    )
    assert r.code == 0, r.err[-3000:]
    assert_reward_rises_within_kl_bound(tmp_path)  # issue 5's criterion
    summary = json.loads((tmp_path / "rlhf" / "summary.json").read_text())
    assert (Path(summary["adapter_dir"]) / "adapter_config.json").is_file()
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(tmp_path / "rlhf" / "hf")  # merged: plain transformers
