"""Bad MCQ / NER / free records: a `DataError` naming file, line and field, or (with
`data.on_bad_record=skip`) a counted skip that keeps every other record of the file, with the
lines of the original file."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest

from chimed_lit.data.prompts import PromptDataModule
from chimed_lit.io.errors import ConfigError, DataError

HEADER = ["Question", "Options", "Answer", "Explanation"]
GOOD = ["问题一", "A 甲\\nB 乙\\nC 丙\\nD 丁", "B", "解析"]


def _cmexam(tmp_path: Path, rows: list[list[str]]) -> Path:
    path = tmp_path / "cmexam.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(HEADER)
        w.writerows(rows)
    return path


def _load(path: Path, **knobs) -> tuple[PromptDataModule, list[dict]]:
    dm = PromptDataModule(train_files=[str(path)], val_fraction=0, **knobs)
    return dm, dm.load_records([str(path)], "train")


def _error(path: Path, **knobs) -> DataError:
    with pytest.raises(DataError) as e:
        _load(path, **knobs)
    return e.value


@pytest.mark.parametrize(
    "row, field, says",
    [
        (["问题二", "A 甲\\nB 乙\\nC 丙\\nD 丁", "", ""], "Answer", "no answer letter"),
        (["问题二", "A 甲\\nB 乙\\nC 丙\\nD 丁", "F", ""], "Answer", "names no option (F)"),
        (["问题二", "", "A", ""], "Options", "missing or empty"),
        (["", "A 甲\\nB 乙", "A", ""], "Question", "missing or empty"),
    ],
)
def test_a_bad_cmexam_row_is_named_by_file_line_and_field(tmp_path, row, field, says):
    path = _cmexam(tmp_path, [GOOD, GOOD, row, GOOD])
    err = _error(path)
    assert (err.source, err.where, err.field) == (str(path), "line 4", field)
    assert says in err.reason and str(err).startswith(f"{path}, line 4: field '{field}':")


def test_a_cmmlu_row_without_an_option(tmp_path):
    path = tmp_path / "anatomy.csv"
    path.write_text(
        "Question,A,B,C,D,Answer\n问,甲,乙,丙,丁,A\n问二,甲,乙,,丁,B\n", encoding="utf-8"
    )
    err = _error(path)
    assert (err.where, err.field, err.reason) == ("line 3", "C", "missing or empty option")


def test_a_cnmleqa_item_is_named_by_the_line_it_starts_on(tmp_path):
    items = [
        {"question": "q1", "opa": "a", "opb": "b", "answer": "opa"},
        {"question": "q2", "opa": "a", "opb": "b", "answer": "opc"},
    ]
    path = tmp_path / "cnmleqa.json"
    path.write_text(json.dumps(items, ensure_ascii=False, indent=2), encoding="utf-8")
    err = _error(path)
    assert (err.where, err.field) == ("line 8", "answer")  # the second object's "{"
    assert "names no option (C)" in err.reason


def test_ner_offsets_that_miss_the_text(tmp_path):
    cmeee = tmp_path / "cmeee.json"
    cmeee.write_text(
        json.dumps(
            [
                {
                    "text": "患者头痛",
                    "entities": [{"start_idx": 2, "end_idx": 3, "type": "sym", "entity": "头痛"}],
                },
                {
                    "text": "患者发热",
                    "entities": [{"start_idx": 2, "end_idx": 2, "type": "sym", "entity": "发热"}],
                },
            ],
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    err = _error(cmeee)
    assert (err.where, err.field) == ("line 1", "entities[0].end_idx")
    assert "is '发', entity says '发热'" in err.reason
    ccks = tmp_path / "ccks.jsonl"
    good = {
        "text": "服用阿司匹林",
        "entity_list": [
            {"entity_index": {"begin": 2, "end": 6}, "entity_type": "药物", "entity": "阿司匹林"}
        ],
    }
    bad = {
        "text": "服用阿司匹林",
        "entity_list": [
            {"entity_index": {"begin": 2, "end": 5}, "entity_type": "药物", "entity": "阿司匹林"}
        ],
    }
    ccks.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in (good, bad)), "utf-8")
    err = _error(ccks)
    assert (err.where, err.field) == ("line 2", "entity_list[0].entity_index.end")


def test_a_missing_field_is_named(tmp_path):
    path = tmp_path / "ccks.jsonl"
    path.write_text(json.dumps({"text": "无实体", "entity_list": [{"entity": "x"}]}), "utf-8")
    err = _error(path, task="ner")
    assert (err.where, err.field, err.reason) == (
        "line 1",
        "entity_list[0].entity_index",
        "missing",
    )


def test_bad_rows_are_skipped_and_counted_keeping_the_rest(tmp_path, caplog):
    multi_line = ["问题三", "A 甲\\nB 乙\\nC 丙\\nD 丁", "C", "第一行\n第二行\n第三行"]
    path = _cmexam(
        tmp_path,
        [
            GOOD,  # line 2
            ["问题二", "A 甲\\nB 乙", "", ""],  # line 3: no answer
            multi_line,  # lines 4-6
            ["问题四", "A 甲\\nB 乙\\nC 丙", "D", ""],  # line 7: D names no option
            ["问题五", "A 甲\\nB 乙\\nC 丙\\nD 丁", "AD", ""],  # line 8
        ],
    )
    with caplog.at_level(logging.WARNING):
        dm, recs = _load(path, on_bad_record="skip")
    assert dm.stats["train_skipped"] == 2 and dm.stats["train_records"] == 3
    assert [json.loads(r["gold"])["answers"] for r in recs] == [["B"], ["C"], ["A", "D"]]
    assert f"{path}, line 3: field 'Answer': no answer letter" in caplog.text
    assert f"{path}, line 7: field 'Answer': answer 'D' names no option (D)" in caplog.text
    # the same skips, one by one, as the whole-file read would have given for good rows
    good_only = _cmexam(
        tmp_path, [GOOD, multi_line, ["问题五", "A 甲\\nB 乙\\nC 丙\\nD 丁", "AD", ""]]
    )
    assert _load(good_only)[1] == recs


def test_bad_json_records_are_skipped_and_counted(tmp_path):
    path = tmp_path / "ccks.jsonl"
    good = {
        "text": "服用阿司匹林",
        "entity_list": [
            {"entity_index": {"begin": 2, "end": 6}, "entity_type": "药物", "entity": "阿司匹林"}
        ],
    }
    lines = [
        json.dumps(good, ensure_ascii=False),
        "{not json",
        json.dumps(
            {
                "text": "x",
                "entity_list": [
                    {"entity_index": {"begin": 0, "end": 1}, "entity_type": "药物", "entity": "y"}
                ],
            }
        ),
        "",
        json.dumps(good, ensure_ascii=False),
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    dm, recs = _load(path, on_bad_record="skip")
    assert dm.stats["train_skipped"] == 2 and len(recs) == 2
    assert all(json.loads(r["gold"])["entities"] == [["阿司匹林", "药物"]] for r in recs)
    with pytest.raises(DataError) as e:
        _load(path)
    assert e.value.where == "line 2" and "invalid JSON" in e.value.reason


def test_a_file_of_only_bad_records_is_an_error_even_when_skipping(tmp_path):
    path = _cmexam(tmp_path, [["问题", "A 甲\\nB 乙", "Z", ""]])
    err = _error(path, on_bad_record="skip")
    assert "no usable train records (1 skipped as bad)" in str(err)


# ----- free prompts and their reference answers ---------------------------------------------
def test_a_free_prompt_may_carry_a_reference(tmp_path):
    path = tmp_path / "free.jsonl"
    rows = [
        {"prompt": "高血压应该挂哪个科？", "reference": "心血管内科"},
        {"messages": [{"role": "user", "content": "感冒了怎么办？"}]},
    ]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), "utf-8")
    _, recs = _load(path)
    assert [(r["task"], json.loads(r["gold"])) for r in recs] == [
        ("free", {"reference": "心血管内科"}),
        ("free", None),
    ]


@pytest.mark.parametrize("reference", ["", "  ", 3, ["a"]])
def test_a_bad_reference_is_named(tmp_path, reference):
    path = tmp_path / "free.jsonl"
    path.write_text(json.dumps({"prompt": "问题", "reference": reference}), "utf-8")
    err = _error(path)
    assert (err.where, err.field) == ("line 1", "reference")


# ----- which reading a file gets ------------------------------------------------------------
def test_a_free_file_named_as_mcq_is_refused(tmp_path):
    path = tmp_path / "free.jsonl"
    path.write_text(json.dumps({"prompt": "问题"}), "utf-8")
    err = _error(path, task="mcq")
    assert err.source == str(path) and "data.task=mcq" in str(err)


def test_an_ner_file_named_as_mcq_is_refused(tmp_path):
    path = tmp_path / "cmeee.json"
    path.write_text(json.dumps([{"text": "头痛", "entities": []}]), "utf-8")
    err = _error(path, task="mcq")
    assert "it reads as cmeee (ner)" in str(err)


@pytest.mark.parametrize(
    "knobs, says",
    [
        ({"task": "qa"}, "data.task='qa': use one of auto, mcq, ner, free"),
        ({"task_format": "sharegpt"}, "data.task_format='sharegpt'"),
        ({"task": "ner", "task_format": "cmexam"}, "reads mcq files, not data.task=ner"),
    ],
)
def test_bad_task_knobs_are_config_errors(knobs, says):
    with pytest.raises(ConfigError) as e:
        PromptDataModule(train_files=["x.jsonl"], **knobs)
    assert says in str(e.value)


def test_bad_items_of_a_json_array_are_skipped_with_their_lines(tmp_path, caplog):
    items = [
        {"question": "q1", "opa": "a", "opb": "b", "answer": "opa"},
        {"question": "q2", "opa": "a", "opb": "b", "answer": "opc"},
        {"question": "q3", "opa": "a", "opb": "b", "opc": "c", "answer": "opc"},
        {"opa": "a", "opb": "b", "answer": "opb"},
    ]
    path = tmp_path / "cnmleqa.json"
    path.write_text(json.dumps(items, ensure_ascii=False, indent=2), encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        dm, recs = _load(path, on_bad_record="skip")
    assert dm.stats["train_skipped"] == 2
    assert [json.loads(r["gold"])["answers"] for r in recs] == [["A"], ["C"]]
    assert f"{path}, line 8: field 'answer'" in caplog.text
    assert f"{path}, line 21: field 'question': missing" in caplog.text
