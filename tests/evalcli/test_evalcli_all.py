"""`chimed-lit eval task=all` over a run dir: one comparison table, a row per stage."""

from __future__ import annotations

import csv
import json


def test_all_stages_one_table(run_eval_cli, fake_run, tmp_path, shared_file):
    ner = shared_file("ner/cmeee_v2_dev.json")
    mcq = shared_file("mcq/cmmlu_medical_test.csv")
    out = tmp_path / "eval"
    r = run_eval_cli(
        "task=all",
        f"paths.output_dir={fake_run}",
        f"eval.output_dir={out}",
        f"data.ner_files=[{ner}]",
        f"data.mcq_files=[{mcq}]",
        "eval.modes=[letter,logprob]",
        "eval.limit=3",
        "eval.max_new_tokens=8",
        "eval.progress=false",
    )
    assert r.code == 0, r.err[-3000:]
    rows = list(csv.DictReader((out / "all.csv").open(encoding="utf-8")))
    assert [row["stage"] for row in rows] == ["pretrain", "sft"]  # reward and hf-less rlhf skipped
    columns = [
        "ner/cmeee_v2_dev/f1",
        "mcq/cmmlu_medical_test/letter/accuracy",
        "scale/demo_scale/logprob/bias_score",
    ]
    assert list(rows[0]) == ["stage", *columns]
    for row in rows:
        assert 0.0 <= float(row[columns[1]]) <= 1.0
        assert 1.0 <= float(row[columns[2]]) <= 5.0
    md = (out / "all.md").read_text(encoding="utf-8")
    assert md.splitlines()[0] == "| stage | " + " | ".join(columns) + " |"
    assert len(md.strip().splitlines()) == 4 and md in r.out  # header, rule, two stages; printed
    for stage in ("pretrain", "sft"):
        for task in ("ner", "mcq", "scale"):
            result = json.loads((out / stage / f"{task}.json").read_text(encoding="utf-8"))
            assert result["model"] == str(fake_run / stage / "hf")
        assert not (out / stage / "dialogue.json").exists()  # no dialogue data configured
    # the two stages hold different weights, so their letter scores differ somewhere
    a, b = (
        json.loads((out / s / "mcq.json").read_text(encoding="utf-8")) for s in ("pretrain", "sft")
    )
    logprobs = [
        [p["letter_logprobs"] for p in x["predictions"]["cmmlu_medical_test"]] for x in (a, b)
    ]
    assert logprobs[0] != logprobs[1]
    # the eval's own Hydra record sits beside the results, not over the training run's .hydra/
    assert (fake_run / "eval" / ".hydra" / "config.yaml").is_file()
    assert not (fake_run / ".hydra").exists()


def test_all_with_no_stage_is_a_checkpoint_error(run_eval_cli, tmp_path):
    r = run_eval_cli("task=all", f"paths.output_dir={tmp_path}", "eval.progress=false")
    assert r.code == 4
    assert "no stage with an hf/ model under" in r.err and str(tmp_path) in r.err
    assert "Traceback" not in r.err
