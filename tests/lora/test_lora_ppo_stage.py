"""PPO with `lora=on` from the default regime's SFT and reward models: it runs, raises the
reward as issue 5 asks of full PPO, and exports the merged policy and the adapter."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.stages.test_rlhf_stage import rollouts


@pytest.mark.slow
def test_ppo_with_lora_raises_reward(run_cli, regime, tmp_path):
    # LoRA wants a learning rate about 10x the full fine-tuning one (README, DPO and LoRA)
    r = run_cli("fit", "stage=rlhf", "lora=on", f"paths.output_dir={tmp_path}", "logger=csv",
                f"stage.policy={regime / 'sft' / 'hf'}",
                f"stage.reward_model={regime / 'reward' / 'hf'}", "trainer.log_every_n_steps=1",
                "stage.module.actor_optimizer.lr=1.5e-3")
    assert r.code == 0, r.err[-3000:]
    steps = rollouts(tmp_path)
    cfg = OmegaConf.load(tmp_path / "rlhf" / "config.yaml")
    assert len(steps) == cfg.trainer.max_steps
    q = len(steps) // 4
    first = statistics.mean(s["rlhf/reward_mean"] for s in steps[:q])
    last = statistics.mean(s["rlhf/reward_mean"] for s in steps[-q:])
    sft_std = steps[0]["rlhf/reward_std"]  # the SFT policy's samples, before any update
    assert last >= first + sft_std, (first, last, sft_std)
    kl_last = statistics.mean(s["rlhf/kl"] for s in steps[-q:])
    assert kl_last <= 2 * cfg.stage.module.kl_target, kl_last
    summary = json.loads((tmp_path / "rlhf" / "summary.json").read_text())
    assert (Path(summary["adapter_dir"]) / "adapter_config.json").is_file()
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(tmp_path / "rlhf" / "hf")  # merged: plain transformers
