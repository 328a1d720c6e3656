"""Evaluation on the outputs of the regime run, and the bias probe as a training callback."""

from __future__ import annotations

import csv
import json

from tests.conftest import shared


def test_eval_all_on_regime_writes_one_table(run_cli, regime, tmp_path):
    mcq = shared("mcq/cmmlu_medical_test.csv")
    ner = shared("ner/cmeee_v2_dev.json")
    dia = shared("dialogue/covid_dialogue_zh_train.json")
    r = run_cli(
        "eval",
        "task=all",
        f"paths.output_dir={regime}",
        f"eval.output_dir={tmp_path}",
        f"data.mcq_files=[{mcq}]",
        f"data.ner_files=[{ner}]",
        f"data.dialogue_files=[{dia}]",
        "eval.limit=3",
        "eval.max_new_tokens=24",
        "eval.progress=false",
    )
    assert r.code == 0, r.err[-3000:]
    rows = list(csv.DictReader((tmp_path / "all.csv").open()))
    stages = [row[next(iter(row))] for row in rows]
    assert set(stages) == {"pretrain", "sft", "rlhf"}  # the reward model is a classifier
    md = (tmp_path / "all.md").read_text()
    assert "rlhf" in md and "|" in md
    one = json.loads((tmp_path / "rlhf" / "mcq.json").read_text())
    assert "metrics" in one and one["predictions"]


def test_bias_scale_callback_during_sft(run_cli, regime, tmp_path):
    r = run_cli(
        "fit",
        "stage=sft",
        f"paths.output_dir={tmp_path}",
        "logger=csv",
        f"model.pretrained={regime / 'pretrain' / 'hf'}",
        "callbacks=with_bias",
        "callbacks.bias_scale.every_n_steps=2",
        "trainer.max_steps=4",
        "trainer.val_check_interval=4",
    )
    assert r.code == 0, r.err[-3000:]
    assert (tmp_path / "sft" / "bias_scale.png").stat().st_size > 1000
    rows = list(csv.DictReader((tmp_path / "sft" / "csv" / "metrics.csv").open()))
    scores = [float(x["bias/bias_score"]) for x in rows if x.get("bias/bias_score")]
    assert len(scores) >= 2 and all(s == s for s in scores)  # at steps 2 and 4, finite
