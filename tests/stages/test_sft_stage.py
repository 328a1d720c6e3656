"""The SFT stage through the pipeline: it learns, learns to stop, reuses and routes overrides."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from chimed_lit.demo import demo_path
from tests.conftest import shared


def summary(run: Path, stage: str) -> dict:
    return json.loads((run / stage / "summary.json").read_text())


def test_assistant_loss_falls_30_percent_below_pretrained(regime):
    s = summary(regime, "sft")
    # the initial validation is the pre-trained model's assistant-token loss
    assert s["final"]["sft/val_loss"] <= 0.7 * s["initial"]["sft/val_loss"], s
    assert s["data"]["train_examples"] > 250 and s["data"]["val_examples"] > 40


def test_sft_starts_from_the_pretrain_output(regime):
    cfg = OmegaConf.load(regime / "sft" / "config.yaml")
    assert cfg.stage.needs == ["pretrain"]
    assert json.loads((regime / "pretrain" / "stage.json").read_text())["complete"]


def test_generate_learned_to_stop(run_cli, regime, tmp_path):
    out = tmp_path / "replies.jsonl"
    r = run_cli(
        "generate",
        f"model.pretrained={regime / 'sft' / 'hf'}",
        f"input={demo_path('prompts_val.jsonl')}",
        f"output={out}",
        "sampling.max_new_tokens=96",
    )
    assert r.code == 0, r.err[-2000:]
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 44
    stopped = sum(r["finished"] for r in rows)
    assert stopped >= 0.8 * len(rows), stopped
    assert all(r["response"] for r in rows if r["finished"])


def test_rerun_reuses_unchanged_stages(run_cli, regime):
    before = summary(regime, "rlhf")
    r = run_cli(
        "fit",
        "stage=rlhf",
        f"paths.output_dir={regime}",
        "logger=[wandb,csv]",
        "trainer.log_every_n_steps=1",
    )
    assert r.code == 0, r.err[-2000:]
    text = r.out + r.err
    for stage in ("pretrain", "sft", "reward", "rlhf"):
        assert f"reusing {stage}" in text, stage
    assert "running" not in text
    assert summary(regime, "rlhf") == before


def test_stage_prefix_routes_overrides(run_cli, tmp_path):
    r = run_cli(
        "fit",
        "stage=sft",
        f"paths.output_dir={tmp_path}",
        "logger=csv",
        "pretrain.trainer.max_steps=3",
        "pretrain.optimizer.lr=0.01",
        "trainer.max_steps=4",
        "trainer.val_check_interval=4",
    )
    assert r.code == 0, r.err[-2000:]
    pre, sft = (OmegaConf.load(tmp_path / s / "config.yaml") for s in ("pretrain", "sft"))
    assert (pre.trainer.max_steps, pre.optimizer.lr) == (3, 0.01)
    assert (sft.trainer.max_steps, sft.optimizer.lr) == (4, 0.002)  # its own lr, unprefixed steps
    assert summary(tmp_path, "pretrain")["global_step"] == 3
    assert summary(tmp_path, "sft")["global_step"] == 4
    # a changed upstream setting retrains it; the same one is reused
    r = run_cli(
        "fit",
        "stage=sft",
        f"paths.output_dir={tmp_path}",
        "logger=csv",
        "pretrain.trainer.max_steps=2",
        "pretrain.optimizer.lr=0.01",
        "trainer.max_steps=4",
        "trainer.val_check_interval=4",
    )
    assert r.code == 0
    assert "running pretrain" in r.out + r.err
    assert summary(tmp_path, "pretrain")["global_step"] == 2


def test_model_pretrained_skips_pretraining(run_cli, regime, tmp_path):
    r = run_cli(
        "fit",
        "stage=sft",
        f"paths.output_dir={tmp_path}",
        "logger=csv",
        f"model.pretrained={regime / 'pretrain' / 'hf'}",
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
    )
    assert r.code == 0, r.err[-2000:]
    assert not (tmp_path / "pretrain").exists()
    assert summary(tmp_path, "sft")["global_step"] == 2


@pytest.mark.parametrize(
    "rel",
    [
        "sft/medicalgpt_medical_sft.jsonl",
        "sft/huatuo_bentsao_llama_data.jsonl",
        "dialogue/covid_dialogue_zh_train.json",
        "dialogue/zhongjing_cmtmedqa_test.json",
        "dialogue/toyhom_im_qa.csv",
    ],
)
def test_sft_on_each_real_sample(run_cli, regime, tmp_path, rel):
    path = shared(rel)
    r = run_cli(
        "fit",
        "stage=sft",
        f"paths.output_dir={tmp_path}",
        "logger=csv",
        f"model.pretrained={regime / 'pretrain' / 'hf'}",
        f"data.train_files=[{path}]",
        "data.max_records=60",
        "data.val_fraction=0.2",
        "trainer.max_steps=3",
        "trainer.val_check_interval=3",
        "data.on_bad_record=skip",
    )
    assert r.code == 0, r.err[-2000:]
    d = summary(tmp_path, "sft")["data"]
    assert d["train_records"] + d["val_records"] == 60
    assert d["train_skipped"] == 0
    assert "train_truncated" in d and 0 <= d["train_truncated"] <= d["train_records"]
    assert d["train_examples"] >= 0.8 * d["train_records"]


def test_chat_streams_and_keeps_history(regime):
    exe = Path(sys.executable).with_name("chimed-lit")
    r = subprocess.run(
        [
            str(exe),
            "chat",
            f"model.pretrained={regime / 'sft' / 'hf'}",
            "sampling.do_sample=false",
            "sampling.max_new_tokens=40",
        ],
        input="高血压有哪些症状？\n需要做什么检查？\n/reset\n/exit\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count("医生: ") == 2
    assert "(history cleared)" in r.stdout
    assert "Traceback" not in r.stderr
