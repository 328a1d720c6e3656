"""Each shared real sample file goes through `SFTDataModule.setup()` (a few records only) with
every count reported; CMtMedQA's two record shapes both convert. Skipped without the samples."""

from __future__ import annotations

import pytest

from chimed_lit.data.conversation import to_messages
from chimed_lit.data.sources import read_file

FILES = {
    "sft/medicalgpt_medical_sft.jsonl": "sharegpt",
    "sft/huatuo_bentsao_llama_data.jsonl": "alpaca",
    "dialogue/covid_dialogue_zh_train.json": "dialogue",
    "dialogue/zhongjing_cmtmedqa_test.json": "history",
    "dialogue/toyhom_im_qa.csv": "qa_csv",
}


@pytest.mark.parametrize("relative", list(FILES))
def test_real_sample_through_setup(relative, shared_file, make_dm, tok, labelled_runs):
    dm = make_dm(
        [shared_file(relative)],
        max_records=40,
        val_fraction=0.1,
        max_length=384,
        max_dropped_fraction=0.2,
    )
    s = dm.stats
    assert s["train_records"] + s["val_records"] == 40 and s["val_records"] == 4
    assert s["train_skipped"] == 0
    for split in ("train", "val"):
        assert 0 <= s[f"{split}_truncated"] <= s[f"{split}_records"]
        assert s[f"{split}_examples"] == s[f"{split}_records"] - s[f"{split}_dropped"]
    ex = dm.train_dataset[0]
    assert len(ex["input_ids"]) <= 384
    assert labelled_runs(tok, ex["input_ids"], ex["labels"])  # something to learn
    batch = dm.collate([dm.train_dataset[i] for i in range(4)])
    assert batch["attention_mask"].sum().item() == sum(
        len(dm.train_dataset[i]["input_ids"]) for i in range(4)
    )


@pytest.mark.parametrize("relative", list(FILES))
def test_auto_detects_the_format(relative, shared_file):
    records = list(read_file(shared_file(relative)))[:20]
    assert {to_messages(r.data).format for r in records} == {FILES[relative]}


def test_cmtmedqa_safety_records_parse_via_instruct(shared_file):
    records = [r.data for r in read_file(shared_file("dialogue/zhongjing_cmtmedqa_test.json"))]
    safety = [r for r in records if "instruct" in r]
    assert len(records) == 672 and len(safety) == 72
    assert any(r["instruct"].startswith(" ") for r in safety)
    for rec in safety:
        msgs = to_messages(rec).messages
        assert [m["role"] for m in msgs] == ["user", "assistant"]
        assert all(m["content"] == m["content"].strip() and m["content"] for m in msgs)
    dialogues = [to_messages(r).messages for r in records if "instruction" in r]
    assert len(dialogues) == 600
    assert max(len(m) for m in dialogues) > 2  # the history turns come first
    assert all(m[-1]["role"] == "assistant" for m in dialogues)


def test_covid_dialogues_alternate_and_end_with_the_doctor(shared_file):
    for rec in read_file(shared_file("dialogue/covid_dialogue_zh_train.json")):
        conv = to_messages(rec.data, "dialogue")
        roles = [m["role"] for m in conv.messages]
        assert roles[0] == "user" and roles[-1] == "assistant"
        assert all(a != b for a, b in zip(roles, roles[1:], strict=False))
        # this sample alternates strictly: one turn per utterance, its speaker prefix removed
        # (and only that: a patient may well begin "医生：您好")
        utterances = rec.data["utterances"]
        assert len(conv.messages) + conv.dropped_turns == len(utterances)
        assert [m["content"] for m in conv.messages] == [
            u[3:].strip() for u in utterances[: len(conv.messages)]
        ]
