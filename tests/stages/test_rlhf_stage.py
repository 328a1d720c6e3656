"""The reward and RLHF stages of the embedded default regime (`chimed-lit fit stage=rlhf`)."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf


def summary(run: Path, stage: str) -> dict:
    return json.loads((run / stage / "summary.json").read_text())


def rollouts(run: Path) -> list[dict[str, float]]:
    rows = csv.DictReader((run / "rlhf" / "csv" / "metrics.csv").open())
    out = {
        int(r["step"]): {k: float(v) for k, v in r.items() if v and k.startswith("rlhf/")}
        for r in rows
        if r.get("rlhf/reward_mean")
    }
    return [out[k] for k in sorted(out)]


def test_reward_model_ranks_held_out_pairs(regime):
    s = summary(regime, "reward")
    assert s["final"]["reward/accuracy"] >= 0.9, s["final"]
    for key in ("margin", "mean", "std", "length_corr"):
        assert torch.isfinite(torch.tensor(s["final"][f"reward/{key}"])), key
    assert (regime / "reward" / "reward_accuracy.png").stat().st_size > 1000


def test_reward_export_loads_as_sequence_classifier(regime):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(regime / "reward" / "hf")
    assert model.config.num_labels == 1
    assert model.config.reward_std > 0 and isinstance(model.config.reward_mean, float)


def assert_reward_rises_within_kl_bound(run: Path) -> list[dict]:
    """Issue 5's criterion on a run's rollouts: the last quarter's mean reward is at least one
    SFT-sample reward std above the first quarter's, and its KL within 2 x kl_target."""
    steps = rollouts(run)
    cfg = OmegaConf.load(run / "rlhf" / "config.yaml")
    assert len(steps) == cfg.trainer.max_steps
    q = len(steps) // 4
    first = statistics.mean(s["rlhf/reward_mean"] for s in steps[:q])
    last = statistics.mean(s["rlhf/reward_mean"] for s in steps[-q:])
    sft_std = steps[0]["rlhf/reward_std"]  # the SFT policy's samples, before any update
    assert last >= first + sft_std, (first, last, sft_std)
    kl_last = statistics.mean(s["rlhf/kl"] for s in steps[-q:])
    assert kl_last <= 2 * cfg.stage.module.kl_target, kl_last  # the adaptive controller's target
    return steps


def test_ppo_raises_reward_within_kl_bound(regime):
    steps = assert_reward_rises_within_kl_bound(regime)
    for key in (
        "kl_coef",
        "entropy",
        "clipfrac",
        "approx_kl",
        "policy_loss",
        "value_loss",
        "response_length",
        "time_generate",
        "time_train",
    ):
        assert key and f"rlhf/{key}" in steps[-1], key


def test_rlhf_policy_beats_sft_policy_on_held_out_prompts(regime):
    s = summary(regime, "rlhf")
    # the initial validation is the SFT policy's greedy replies, scored by the reward model
    assert s["final"]["rlhf/val_reward"] > s["initial"]["rlhf/val_reward"], s


def test_rlhf_exports_the_policy(regime):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = regime / "rlhf" / "hf"
    model = AutoModelForCausalLM.from_pretrained(hf)
    tok = AutoTokenizer.from_pretrained(hf)
    assert model.config.vocab_size >= len(tok)
    assert "[bot]:" in tok.chat_template


def _ppo(run_cli, out: Path, regime: Path, *extra: str):
    r = run_cli(
        "fit",
        "stage=rlhf",
        f"paths.output_dir={out}",
        "logger=csv",
        f"stage.policy={regime / 'sft' / 'hf'}",
        f"stage.reward_model={regime / 'reward' / 'hf'}",
        "trainer.log_every_n_steps=1",
        "trainer.val_check_interval=100",
        "checkpoint.every_n_steps=100",
        "data.batch_size=8",
        "scheduler.total_steps=6",
        *extra,
    )
    assert r.code == 0, r.err[-3000:]
    return r


def test_ppo_resume_matches_straight_run(run_cli, regime, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    _ppo(run_cli, straight, regime, "trainer.max_steps=6")
    _ppo(run_cli, split, regime, "trainer.max_steps=3")
    r = _ppo(run_cli, split, regime, "trainer.max_steps=6", "resume=true")
    assert "resuming rlhf" in r.out + r.err
    a, b = rollouts(straight), rollouts(split)
    assert len(a) == 6 and len(b) >= 3
    for want, got in zip(a[3:], b[-3:], strict=True):
        for key in (
            "rlhf/reward_mean",
            "rlhf/kl",
            "rlhf/kl_coef",
            "rlhf/policy_loss",
            "rlhf/value_loss",
        ):
            assert got[key] == pytest.approx(want[key], abs=1e-5), key


def test_wandb_table_of_samples_written(regime):
    tables = list((regime / "wandb").rglob("*.table.json"))
    assert any("samples" in t.name for t in tables), tables
    rows = json.loads(next(t for t in tables if "samples" in t.name).read_text())
    assert rows["columns"] == ["step", "prompt", "response", "reward"] and rows["data"]
