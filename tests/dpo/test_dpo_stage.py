"""`chimed-lit fit stage=dpo` on the tiny default: pretrain -> sft -> dpo through the pipeline."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import torch
from omegaconf import OmegaConf


def summary(run: Path, stage: str) -> dict:
    return json.loads((run / stage / "summary.json").read_text())


def test_dpo_implicit_reward_ranks_held_out_pairs(dpo_run):
    s = summary(dpo_run, "dpo")
    # before training the policy is its reference: every implicit reward is 0, no pair is won
    assert s["initial"]["dpo/reward_accuracy"] == 0.0
    assert abs(s["initial"]["dpo/reward_margin"]) < 1e-5
    assert s["final"]["dpo/reward_accuracy"] >= 0.9, s["final"]
    assert s["final"]["dpo/reward_margin"] > 0
    assert s["final"]["dpo/val_loss"] < s["initial"]["dpo/val_loss"]
    # held-out pairs: the demo validation file, not a split of the training pairs
    assert s["data"]["val_pairs"] > 40 and s["data"]["train_pairs"] > 200, s["data"]


def test_dpo_lowers_rejected_log_probs_more_than_chosen(dpo_run):
    s = summary(dpo_run, "dpo")
    drop_rejected = s["initial"]["dpo/logps_rejected"] - s["final"]["dpo/logps_rejected"]
    drop_chosen = s["initial"]["dpo/logps_chosen"] - s["final"]["dpo/logps_chosen"]
    assert drop_rejected > drop_chosen, s


def test_dpo_runs_after_sft_and_logs_its_metrics(dpo_run):
    cfg = OmegaConf.load(dpo_run / "dpo" / "config.yaml")
    assert cfg.stage.needs == ["sft"] and cfg.stage.spec._target_ == "chimed_lit.stages.dpo.DPO"
    for stage in ("pretrain", "sft", "dpo"):
        assert json.loads((dpo_run / stage / "stage.json").read_text())["complete"], stage
    rows = list(csv.DictReader((dpo_run / "dpo" / "csv" / "metrics.csv").open()))
    logged = {k for r in rows for k, v in r.items() if v}
    for key in (
        "train_loss",
        "reward_accuracy",
        "reward_margin",
        "logps_chosen",
        "logps_rejected",
        "val_loss",
    ):
        assert f"dpo/{key}" in logged, key
    losses = [float(r["dpo/train_loss"]) for r in rows if r.get("dpo/train_loss")]
    assert len(losses) == cfg.trainer.max_steps
    assert sum(losses[-5:]) < sum(losses[:5])


def test_dpo_exports_a_plain_causal_lm_and_no_reference(dpo_run):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(dpo_run / "dpo" / "hf")
    sft = AutoModelForCausalLM.from_pretrained(dpo_run / "sft" / "hf")
    moved = [n for n, p in model.state_dict().items() if not torch.equal(p, sft.state_dict()[n])]
    assert moved  # the policy trained away from its SFT start
    ckpt = torch.load(dpo_run / "dpo" / "checkpoints" / "last.ckpt", weights_only=False)
    assert not any(k.startswith("ref.") for k in ckpt["state_dict"])  # rebuilt, not saved


def test_bad_dpo_settings_stop_before_any_stage_trains(run_cli, tmp_path):
    r = run_cli(
        "fit",
        "stage=dpo",
        "stage.module.loss_type=kto",
        "stage.module.beta=0",
        f"paths.output_dir={tmp_path}",
        "logger=csv",
    )
    assert r.code == 2, r.err[-2000:]
    assert "stage.module.loss_type='kto'" in r.err and "stage.module.beta=0" in r.err
    assert "Traceback" not in r.err and not (tmp_path / "pretrain").exists()
