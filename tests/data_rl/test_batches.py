"""Batches carry one record per prompt (the contract of issue 21's rewards): task, question
(= the prompt's last user turn) and gold; free prompts keep today's reading."""

from __future__ import annotations

import json

from chimed_lit.data.prompts import PromptDataModule
from chimed_lit.demo import demo_path
from tests.conftest import shared


def _batches(dm: PromptDataModule) -> list[dict]:
    dm.setup("fit")
    n = len(dm.train_dataset)
    return [dm.collate([dm.train_dataset[i] for i in range(n)])]


def test_mixed_files_give_each_prompt_its_own_task(demo_tok, tmp_path):
    free = tmp_path / "free.jsonl"
    free.write_text(
        json.dumps(
            {"prompt": "高血压应该挂哪个科？", "reference": "心血管内科"}, ensure_ascii=False
        ),
        "utf-8",
    )
    dm = PromptDataModule(
        tokenizer=demo_tok,
        train_files=[
            str(shared("mcq/cmmlu_medical_dev.csv")),
            str(free),
            str(shared("ner/cmeee_v2_dev.json")),
        ],
        val_fraction=0,
        max_length=4096,
        cache_dir=str(tmp_path),
    )
    (batch,) = _batches(dm)
    tasks = [r["task"] for r in batch["records"]]
    assert tasks == ["mcq"] * 45 + ["free"] + ["ner"] * 1000
    assert batch["records"][45] == {
        "task": "free",
        "question": "高血压应该挂哪个科？",
        "gold": {"reference": "心血管内科"},
        "messages": [{"role": "user", "content": "高血压应该挂哪个科？"}],
    }
    for rec, text in zip(batch["records"], batch["prompt_text"], strict=True):
        assert set(rec) == {"task", "question", "gold", "messages"} and rec["question"] == text
        assert rec["messages"][-1] == {"role": "user", "content": text}  # the whole prompt
        json.dumps(rec)
    assert set(batch) == {"prompt_ids", "prompt_text", "records"}


def test_the_demo_prompts_are_free_with_no_gold(demo_tok, tmp_path):
    dm = PromptDataModule(tokenizer=demo_tok, cache_dir=str(tmp_path))
    (batch,) = _batches(dm)
    assert {(r["task"], r["gold"] is None) for r in batch["records"]} == {("free", True)}
    assert dm.train_files == [demo_path("prompts.jsonl")]


def test_task_free_reads_an_mcq_file_as_chat_records_only(tmp_path):
    """`data.task=free` is today's reading: a CSV of questions is no chat format."""
    import pytest

    from chimed_lit.io.errors import DataError

    path = shared("mcq/cmmlu_medical_dev.csv")
    dm = PromptDataModule(train_files=[str(path)], task="free", val_fraction=0)
    with pytest.raises(DataError) as e:
        dm.load_records([str(path)], "train")
    assert e.value.field == "format" and e.value.where == "line 2"
