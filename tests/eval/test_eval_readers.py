"""Readers on the real shared samples (counts, offset conventions) and on malformed input
(EvalDataError naming file, line and field)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chimed_lit.eval.errors import EvalDataError
from chimed_lit.eval.formats import detect_format, read_examples
from chimed_lit.eval.readers_mcq import split_cmexam_options


def test_cmeee_inclusive_end_becomes_exclusive(data_file) -> None:
    result = read_examples(data_file("ner/cmeee_v2_dev.json"))
    assert result.format == "cmeee" and result.task == "ner"
    assert len(result) == 1000
    assert sum(len(ex.entities) for ex in result.examples) == 5033
    first = result.examples[0]
    # SOURCES.md: start_idx 3, end_idx 11 (inclusive), entity "SARST细胞亚群" (9 characters)
    ent = first.entities[0]
    assert (ent.start, ent.end, ent.type, ent.surface) == (3, 12, "bod", "SARST细胞亚群")
    for ex in result.examples:
        for e in ex.entities:
            assert ex.text[e.start : e.end] == e.surface
    assert any(not ex.entities for ex in result.examples)  # empty entity lists are kept


def test_ccks_exclusive_end_kept(data_file) -> None:
    result = read_examples(data_file("ner/ccks2019_yidu_s4k_train.jsonl"))
    assert result.format == "ccks2019" and len(result) == 300
    assert sum(len(ex.entities) for ex in result.examples) == 4343
    ent = result.examples[0].entities[0]
    assert (ent.start, ent.end, ent.surface, ent.type) == (10, 12, "巩膜", "解剖部位")
    types = {e.type for ex in result.examples for e in ex.entities}
    assert types == {"疾病和诊断", "解剖部位", "影像检查", "实验室检验", "手术", "药物"}


def test_reading_cmeee_as_exclusive_fails_on_offsets(data_file) -> None:
    """Reading CMeEE with the wrong convention must fail, not shift spans silently."""
    with pytest.raises(EvalDataError) as err:
        read_examples(data_file("ner/cmeee_v2_dev.json"), fmt="ccks2019")
    assert err.value.field == "entity_list"


def test_mcq_files(data_file) -> None:
    cmexam = read_examples(data_file("mcq/cmexam_val.csv"))
    assert cmexam.format == "cmexam" and len(cmexam) == 600
    first = cmexam.examples[0]
    assert first.options == {
        "A": "原发病",
        "B": "出血部位",
        "C": "出血量",
        "D": "在胃内停留时间",
        "E": "以上均非",
    }
    assert first.answers == frozenset({"C"})
    sizes = [len(ex.options) for ex in cmexam.examples]
    assert set(sizes) == {4, 5} and sizes.count(5) == 594  # a few questions have only A-D

    test = read_examples(data_file("mcq/cmmlu_medical_test.csv"))
    assert len(test) == 450 and len({ex.subject for ex in test.examples}) == 9
    assert test.examples[0].answers == frozenset({"A"}) and test.examples[0].subject == "anatomy"
    dev = read_examples(data_file("mcq/cmmlu_medical_dev.csv"))
    assert len(dev) == 45

    cn = read_examples(data_file("mcq/cnmleqa_3k_2017.json"))
    assert cn.format == "cnmleqa" and len(cn) == 600
    assert cn.examples[0].answers == frozenset({"B"})
    assert cn.examples[0].options["B"] == "肾上腺皮质增多症定性"
    assert {ex.subject for ex in cn.examples} == {"知识问答", "案例分析"}


def test_dialogue_files(data_file) -> None:
    covid = read_examples(data_file("dialogue/covid_dialogue_zh_train.json"))
    assert covid.format == "covid_dialogue"
    assert len(covid) + sum(covid.skipped.values()) == 500
    for ex in covid.examples:
        assert ex.history[0][0] == "user"
        assert not ex.reference.startswith(("医生：", "病人："))
        assert {role for role, _ in ex.history} <= {"user", "assistant"}
    raw = json.loads(data_file("dialogue/covid_dialogue_zh_train.json").read_text("utf-8"))[0]
    first = covid.examples[0]
    assert len(first.history) == len(raw) - 1  # its last utterance is a doctor's
    assert first.history[1] == ("assistant", raw[1].removeprefix("医生："))

    cmt = read_examples(data_file("dialogue/zhongjing_cmtmedqa_test.json"))
    assert len(cmt) == 600 and cmt.skipped["safety_prompt"] == 72
    first = cmt.examples[0]
    assert first.reference.startswith("不客气")
    assert first.history[-1] == ("user", "我知道了，谢谢医生的解答。")
    assert len(first.history) % 2 == 1  # pairs plus the final patient turn

    qa = read_examples(data_file("dialogue/toyhom_im_qa.csv"))
    assert qa.format == "qa_csv" and len(qa) == 1000
    assert qa.examples[0].reference.startswith("高血压病人可以口服党参")


def test_sharegpt_and_medqa(tmp_path: Path) -> None:
    sg = tmp_path / "chat.jsonl"
    rows = [
        {
            "conversations": [
                {"from": "human", "value": "头痛"},
                {"from": "gpt", "value": "休息"},
                {"from": "human", "value": "还痛"},
                {"from": "gpt", "value": "就医"},
                {"from": "human", "value": "谢谢"},
            ]
        },
        {"conversations": [{"from": "human", "value": "只有问题"}]},
    ]
    sg.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    result = read_examples(sg)
    assert result.format == "sharegpt" and len(result) == 1
    assert result.skipped["no_doctor_turn"] == 1
    ex = result.examples[0]
    assert ex.reference == "就医"  # the LAST assistant turn; the trailing user turn is dropped
    assert ex.history == (("user", "头痛"), ("assistant", "休息"), ("user", "还痛"))

    mq = tmp_path / "medqa.jsonl"
    rec = {
        "question": "Q",
        "options": {"A": "x", "B": "y"},
        "answer_idx": "B",
        "meta_info": "step1",
    }
    mq.write_text(json.dumps(rec), encoding="utf-8")
    got = read_examples(mq)
    assert got.format == "medqa" and got.examples[0].answers == frozenset({"B"})
    assert got.examples[0].subject == "step1"


def test_detect_and_override(data_file, tmp_path: Path) -> None:
    assert detect_format(data_file("mcq/cmmlu_medical_dev.csv")) == "ceval"
    assert detect_format(data_file("ner/ccks2019_yidu_s4k_train.jsonl")) == "ccks2019"
    with pytest.raises(EvalDataError, match="for task 'dialogue'"):
        read_examples(data_file("dialogue/toyhom_im_qa.csv"), task="mcq")
    odd = tmp_path / "odd.json"
    odd.write_text('[{"foo": 1}]', encoding="utf-8")
    with pytest.raises(EvalDataError, match="cannot tell the format"):
        read_examples(odd)


def test_cmexam_literal_backslash_n() -> None:
    assert split_cmexam_options(r"A 甲\nB 乙\nC 丙") == [("A", "甲"), ("B", "乙"), ("C", "丙")]
    assert split_cmexam_options("A．甲\nB、乙") == [("A", "甲"), ("B", "乙")]


# --- malformed input: file, line and field are named ---------------------------------


def _err(path: Path, **kwargs) -> EvalDataError:
    with pytest.raises(EvalDataError) as info:
        read_examples(path, **kwargs)
    assert info.value.file == str(path)
    return info.value


def test_bad_ner_offset_names_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(
        '[\n  {"text": "头痛发热", "entities": []},\n'
        '  {"text": "头痛发热", "entities": [\n'
        '    {"start_idx": 0, "end_idx": 2, "type": "sym", "entity": "头痛"}]}\n]',
        encoding="utf-8",
    )
    err = _err(path)
    assert err.line == 3 and err.field == "entities[0].end_idx"
    assert "头痛发" in str(err) and str(path) in str(err)
    skipped = read_examples(path, on_mismatch="skip")
    assert skipped.skipped["offset_mismatch"] == 1 and len(skipped) == 2


def test_bad_ccks_type_and_missing_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"text": "巩膜黄染", "entity_list": []}\n\n'
        '{"text": "巩膜黄染", "entity_list": [{"entity_index": {"begin": "0", "end": 2},'
        ' "entity_type": "解剖部位", "entity": "巩膜"}]}\n',
        encoding="utf-8",
    )
    err = _err(path)
    assert err.line == 3 and err.field == "entity_list[0].entity_index.begin"
    path.write_text('{"text": "x", "entity_list": [{"entity_index": {"begin": 0}}]}\n', "utf-8")
    err = _err(path)
    assert err.line == 1 and err.field == "entity_list[0].entity_index.end"


def test_bad_mcq_answer_and_option(tmp_path: Path) -> None:
    path = tmp_path / "exam.csv"
    path.write_text(
        "Question,Options,Answer\r\n题一,A 甲\\nB 乙,A\r\n题二,A 甲\\nB 乙,F\r\n", encoding="utf-8"
    )
    err = _err(path)
    assert (err.line, err.field) == (3, "Answer") and "F" in err.message
    path.write_text("Question,A,B,C,D,Answer\n题,甲,乙,,丁,A\n", encoding="utf-8")
    err = _err(path)
    assert (err.line, err.field) == (2, "C")
    path = tmp_path / "cnmleqa.json"
    path.write_text('[{"question": "q", "opa": "x", "opb": "y", "answer": "B"}]', encoding="utf-8")
    err = _err(path)
    assert (err.line, err.field) == (1, "answer")


def test_bad_dialogue_prefix_and_json(tmp_path: Path) -> None:
    path = tmp_path / "covid.json"
    path.write_text(
        '[\n  ["病人：头痛", "医生：休息"],\n  ["病人：咳嗽", "护士：多喝水"]\n]', "utf-8"
    )
    err = _err(path)
    assert (err.line, err.field) == (3, "[1]")
    path.write_text(
        '[\n  ["病人：头痛", "医生：休息"],\n  ["病人：咳嗽" "医生：多喝水"]\n]', "utf-8"
    )
    err = _err(path)
    assert err.line == 3 and "invalid JSON" in err.message
    cmt = tmp_path / "cmt.json"
    cmt.write_text('[{"instruction": "q", "output": "a", "history": [["only one"]]}]', "utf-8")
    err = _err(cmt)
    assert (err.line, err.field) == (1, "history[0]")


def test_line_separator_characters_inside_records(tmp_path: Path) -> None:
    """U+2028 is valid inside JSON strings and CSV cells; it must not split a record."""
    jl = tmp_path / "chat.jsonl"
    rec = {
        "conversations": [
            {"from": "human", "value": "头痛\u2028发热"},
            {"from": "gpt", "value": "休息"},
        ]
    }
    jl.write_text(json.dumps(rec, ensure_ascii=False) + "\n", encoding="utf-8")
    assert read_examples(jl).examples[0].history == (("user", "头痛\u2028发热"),)
    qa = tmp_path / "qa.csv"
    qa.write_text("title,ask,answer\r\n头痛,头痛\u2028三天,休息\r\n", encoding="utf-8")
    got = read_examples(qa)
    assert len(got) == 1 and got.examples[0].history == (("user", "头痛\u2028三天"),)
