"""`chimed-lit eval task=<one task>` on a tiny model with the real shared sample files."""

from __future__ import annotations

import json

import pytest

FAST = ["eval.limit=3", "eval.max_new_tokens=8", "eval.progress=false"]


@pytest.mark.parametrize(
    ("task", "files", "keys"),
    [
        ("ner", ["ner/cmeee_v2_dev.json"], ("precision", "recall", "f1")),
        ("mcq", ["mcq/cmmlu_medical_test.csv"], ("accuracy",)),
        (
            "dialogue",
            ["dialogue/covid_dialogue_zh_train.json", "dialogue/toyhom_im_qa.csv"],
            ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_1", "rouge_2", "rouge_l"),
        ),
    ],
)
def test_data_task_writes_json_with_metric_keys(
    run_eval_cli, tiny_hf, tmp_path, task, files, keys, shared_file
):
    paths = [shared_file(f) for f in files]
    r = run_eval_cli(
        f"task={task}",
        f"model.pretrained={tiny_hf}",
        f"paths.output_dir={tmp_path}",
        f"data.files=[{','.join(paths)}]",
        *FAST,
    )
    assert r.code == 0, r.err[-3000:]
    result = json.loads((tmp_path / "eval" / f"{task}.json").read_text(encoding="utf-8"))
    assert result["task"] == task and result["model"] == str(tiny_hf)
    stems = [f.rsplit("/", 1)[-1].rsplit(".", 1)[0] for f in files]
    assert list(result["metrics"]) == stems  # one entry per file, in order
    for stem in stems:
        metrics = result["metrics"][stem]
        if task == "mcq":  # every mode by default; each scored by accuracy
            assert set(metrics) == {"letter", "option_text", "generate"}
            metrics = metrics["letter"]
            assert metrics["n"] == 3
        for key in keys:
            assert 0.0 <= metrics[key] <= 1.0, (stem, key, metrics)
        assert len(result["predictions"][stem]) == 3
    assert (tmp_path / "eval" / f"{task}.md").is_file()
    assert f"{task}/{stems[0]}/" in r.out  # the printed headline table
    assert "Traceback" not in r.err


def test_scale_demo_instrument(run_eval_cli, tiny_hf, tmp_path):
    killed = tmp_path / "eval" / ".scale.md.k1ll3d00"  # what a killed eval's atomic write left
    killed.parent.mkdir(parents=True)
    killed.write_text("half a table")
    kept = tmp_path / "eval" / ".notes.txt"  # a dotfile that is no partial write stays
    kept.write_text("mine")
    r = run_eval_cli(
        "task=scale",
        f"model.pretrained={tiny_hf}",
        f"paths.output_dir={tmp_path}",
        "eval.modes=[logprob]",
        "eval.progress=false",
    )
    assert r.code == 0, r.err[-3000:]
    result = json.loads((tmp_path / "eval" / "scale.json").read_text(encoding="utf-8"))
    assert result["instrument"] == "demo"
    scored = result["metrics"]["logprob"]
    assert 1.0 <= scored["bias_score"] <= 5.0  # five options: bias values 1..5
    assert isinstance(scored["degenerate"], bool)
    assert scored["n_items"] == 6 and scored["n_answers"] == 12  # both option orders
    assert "scale/demo_scale/logprob/bias_score" in r.out
    assert not killed.exists() and kept.read_text() == "mine"


def test_single_task_defaults_to_the_last_stage_of_the_run(run_eval_cli, fake_run, tmp_path):
    out = tmp_path / "eval_out"
    r = run_eval_cli(
        "task=scale",
        f"paths.output_dir={fake_run}",
        f"eval.output_dir={out}",
        "eval.limit=2",
        "eval.modes=[logprob]",
        "eval.progress=false",
    )
    assert r.code == 0, r.err[-3000:]
    result = json.loads((out / "scale.json").read_text(encoding="utf-8"))
    assert result["model"] == str(fake_run / "sft" / "hf")  # rlhf has no hf/; reward is skipped
    assert result["metrics"]["logprob"]["n_items"] == 2


def test_items_file_picks_the_builtin_scale_by_item_count(run_eval_cli, tiny_hf, tmp_path):
    items = tmp_path / "mica_items.txt"  # made-up texts: the real items are not shipped
    items.write_text("\n".join(f"示例陈述{i}。" for i in range(1, 17)), encoding="utf-8")
    r = run_eval_cli(
        "task=scale",
        f"model.pretrained={tiny_hf}",
        f"paths.output_dir={tmp_path}",
        f"eval.items_file={items}",
        "eval.limit=2",
        "eval.modes=[logprob]",
        "eval.progress=false",
    )
    assert r.code == 0, r.err[-3000:]
    result = json.loads((tmp_path / "eval" / "scale.json").read_text(encoding="utf-8"))
    assert result["instrument"] == "mica" and result["key_status"] == "published"
    assert 1.0 <= result["metrics"]["logprob"]["bias_score"] <= 6.0  # six options
    assert "scale/mica/logprob/bias_score" in r.out
