"""The RL prompt data reads the real MCQ and NER shapes (../shared/data, research-only) through
eval's readers, and each record's gold is the source row's answer: checked here against the raw
rows, read independently of eval's readers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from chimed_lit.data.prompts import PromptDataModule
from tests.conftest import shared


def _records(path: Path, **knobs) -> list[dict]:
    dm = PromptDataModule(train_files=[str(path)], val_fraction=0, **knobs)
    return dm.load_records([str(path)], "train")


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def _gold(rec: dict) -> dict:
    """The record's gold, kept as JSON text (the dataset column the batches parse)."""
    gold = json.loads(rec["gold"])
    assert isinstance(gold, dict)
    return gold


def test_cmexam_csv_gold_is_the_rows_answer_and_options():
    path = shared("mcq/cmexam_val.csv")
    rows, recs = _csv_rows(path), _records(path)
    assert len(recs) == len(rows) == 600
    for row, rec in zip(rows, recs, strict=True):
        # the Options cell holds "A 原发病\nB 出血部位..." with a literal backslash-n
        options = {}
        for part in row["Options"].split("\\n"):
            letter, text = part.strip().split(" ", 1)
            options[letter] = text.strip()
        assert rec["task"] == "mcq"
        assert _gold(rec) == {"answers": sorted(row["Answer"].strip()), "options": options}
        assert row["Question"].strip() in rec["messages"][-1]["content"]


def test_cmmlu_csv_gold_is_the_rows_answer_and_options():
    path = shared("mcq/cmmlu_medical_test.csv")
    rows, recs = _csv_rows(path), _records(path)
    assert len(recs) == len(rows) == 450
    for row, rec in zip(rows, recs, strict=True):
        assert _gold(rec) == {
            "answers": [row["Answer"].strip()],
            "options": {k: row[k].strip() for k in "ABCD"},
        }


def test_cnmleqa_json_gold_is_the_records_answer_and_options():
    path = shared("mcq/cnmleqa_3k_2017.json")
    raw, recs = json.loads(path.read_text(encoding="utf-8")), _records(path)
    assert len(recs) == len(raw)
    for item, rec in zip(raw, recs, strict=True):
        options = {
            k[2].upper(): str(item[k]) for k in ("opa", "opb", "opc", "opd", "ope") if k in item
        }
        assert _gold(rec) == {"answers": [item["answer"][2].upper()], "options": options}


def test_multi_answer_cmexam_rows_keep_every_letter(tmp_path):
    """CMExam has multi-answer questions (the shared sample has none: written here)."""
    path = tmp_path / "cmexam_multi.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Question", "Options", "Answer", "Explanation"])
        w.writerow(
            ["以下哪些属于消化内科疾病", "A 胃炎\\nB 肺炎\\nC 肠炎\\nD 消化性溃疡", "ACD", "x"]
        )
        w.writerow(["单选题", "A 甲\\nB 乙\\nC 丙\\nD 丁\\nE 戊", "E", ""])
    recs = _records(path)
    assert [_gold(r)["answers"] for r in recs] == [["A", "C", "D"], ["E"]]
    assert "（可能有多个正确答案）" in recs[0]["messages"][-1]["content"]
    assert "（可能有多个正确答案）" not in recs[1]["messages"][-1]["content"]


def test_cmeee_gold_pairs_and_type_names():
    path = shared("ner/cmeee_v2_dev.json")
    raw, recs = json.loads(path.read_text(encoding="utf-8")), _records(path)
    assert len(recs) == len(raw) == 1000
    for item, rec in zip(raw, recs, strict=True):
        gold = _gold(rec)
        assert rec["task"] == "ner"
        pairs = {(e["entity"], e["type"]) for e in item["entities"]}
        assert {tuple(p) for p in gold["entities"]} == pairs
        assert len(gold["entities"]) == len(pairs)  # each (surface, type) once
        assert gold["type_names"]["疾病"] == "dis" and gold["type_names"]["dis"] == "dis"
        assert gold["type_names"]["临床表现"] == "sym"
        assert item["text"] in rec["messages"][-1]["content"]


def test_ccks_gold_pairs_keep_the_chinese_type_names():
    path = shared("ner/ccks2019_yidu_s4k_train.jsonl")
    raw = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    recs = _records(path)
    assert len(recs) == len(raw) == 300
    types = sorted({e["entity_type"] for item in raw for e in item["entity_list"]})
    for item, rec in zip(raw, recs, strict=True):
        gold = _gold(rec)
        pairs = {(e["entity"], e["entity_type"]) for e in item["entity_list"]}
        assert {tuple(p) for p in gold["entities"]} == pairs
        assert gold["type_names"] == {t: t for t in types}


@pytest.mark.parametrize(
    "rel, task_format",
    [("mcq/cmmlu_medical_dev.csv", "cmmlu"), ("ner/cmeee_v2_dev.json", "cmeee")],
)
def test_task_and_format_can_be_named(rel, task_format):
    path = shared(rel)
    task = "ner" if task_format == "cmeee" else "mcq"
    recs = _records(path, task=task, task_format=task_format)
    assert {r["task"] for r in recs} == {task} and recs == _records(path)
