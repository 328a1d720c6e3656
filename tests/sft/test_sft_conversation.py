"""Every record shape converts to the one normal form; bad shapes name the exact field."""

from __future__ import annotations

import pytest

from chimed_lit.data.base import FieldError
from chimed_lit.data.conversation import QAColumns, detect_format, to_messages


def _m(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": r, "content": c} for r, c in pairs]


def test_alpaca_input_appended_and_history_first():
    rec = {
        "instruction": "头痛怎么办？",
        "input": "已经三天",
        "output": "先测血压。",
        "history": [["你好", "您好，请讲。"]],
    }
    conv = to_messages(rec, "alpaca")
    assert detect_format(rec) == "history"  # auto: a history means CMtMedQA-style (stripped)
    assert conv.messages == _m(
        ("user", "你好"),
        ("assistant", "您好，请讲。"),
        ("user", "头痛怎么办？\n已经三天"),
        ("assistant", "先测血压。"),
    )
    plain = to_messages({"instruction": "问", "input": "", "output": "答"})
    assert (plain.format, plain.messages) == ("alpaca", _m(("user", "问"), ("assistant", "答")))


def test_sharegpt_roles_and_system():
    rec = {
        "conversations": [
            {"from": "system", "value": "你是医生。"},
            {"from": "human", "value": "咳嗽"},
            {"from": "gpt", "value": "多喝水"},
            {"from": "user", "value": "还有呢"},
            {"from": "assistant", "value": "休息"},
        ]
    }
    assert to_messages(rec).messages == _m(
        ("system", "你是医生。"),
        ("user", "咳嗽"),
        ("assistant", "多喝水"),
        ("user", "还有呢"),
        ("assistant", "休息"),
    )


def test_messages_pass_through():
    msgs = _m(("system", "s"), ("user", "u"), ("assistant", "a"))
    conv = to_messages({"messages": msgs})
    assert (conv.format, conv.messages) == ("messages", msgs)


def test_dialogue_merges_speakers_and_drops_trailing_patient():
    rec = {
        "utterances": [
            "病人：发烧",
            "病人：两天了",
            "医生：多少度？",
            "病人：38度",
            "医生:吃退烧药。",
            "病人：谢谢",
        ]
    }
    conv = to_messages(rec)
    assert conv.format == "dialogue"
    assert conv.messages == _m(
        ("user", "发烧\n两天了"),
        ("assistant", "多少度？"),
        ("user", "38度"),
        ("assistant", "吃退烧药。"),
    )
    assert conv.dropped_turns == 1


def test_history_strips_and_reads_instruct():
    safety = {"instruct": " 孩子发烧是恶魔附身吗？", "output": " 不是，请就医。"}
    conv = to_messages(safety)
    assert conv.format == "history"
    assert conv.messages == _m(("user", "孩子发烧是恶魔附身吗？"), ("assistant", "不是，请就医。"))
    rec = {
        "id": "j1",
        "instruction": "谢谢",
        "input": "",
        "output": " 不客气",
        "history": [[" 我咳嗽", "多久了？ "]],
    }
    assert to_messages(rec).messages == _m(
        ("user", "我咳嗽"), ("assistant", "多久了？"), ("user", "谢谢"), ("assistant", "不客气")
    )


def test_qa_csv_title_fallback_and_custom_columns():
    row = {"department": "心血管科", "title": "高血压能吃党参吗？", "ask": "", "answer": "可以。"}
    conv = to_messages(row)
    assert conv.format == "qa_csv"
    assert conv.messages == _m(("user", "高血压能吃党参吗？"), ("assistant", "可以。"))
    qa = QAColumns(question="q", answer="a", title=None)
    assert to_messages({"q": "问", "a": "答"}, "qa_csv", qa).messages == _m(
        ("user", "问"), ("assistant", "答")
    )


def test_detect_format_unknown_keys():
    with pytest.raises(FieldError) as e:
        detect_format({"text": "x"})
    assert e.value.field == "format"


@pytest.mark.parametrize(
    "fmt, rec, field",
    [
        (
            "sharegpt",
            {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt"}]},
            "conversations[1].value",
        ),
        (
            "sharegpt",
            {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": 3}]},
            "conversations[1].value",
        ),
        ("sharegpt", {"conversations": [{"from": "robot", "value": "q"}]}, "conversations[0].from"),
        ("sharegpt", {"conversations": {"from": "human"}}, "conversations"),
        (
            "messages",
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "  "},
                ]
            },
            "messages[1].content",
        ),
        (
            "messages",
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "a"},
                ]
            },
            "messages[1].role",
        ),
        (
            "messages",
            {"messages": [{"role": "user", "content": "q"}, {"role": "system", "content": "s"}]},
            "messages[1].role",
        ),
        ("messages", {"messages": [{"role": "assistant", "content": "a"}]}, "messages[0].role"),
        ("messages", {"messages": [{"role": "user", "content": "q"}]}, "messages"),
        ("alpaca", {"instruction": "q"}, "output"),
        ("alpaca", {"instruction": ["q"], "output": "a"}, "instruction"),
        ("alpaca", {"instruction": "q", "output": "a", "history": [["only one"]]}, "history[0]"),
        ("history", {"output": "a"}, "instruction"),
        ("dialogue", {"utterances": ["病人：q", "护士：a"]}, "utterances[1]"),
        ("dialogue", {"utterances": ["病人：q", "医生："]}, "utterances[1]"),
        ("dialogue", {"utterances": ["病人：只有病人"]}, "utterances"),
        ("qa_csv", {"title": "", "ask": "", "answer": "a"}, "ask"),
        ("qa_csv", {"ask": "q"}, "answer"),
    ],
)
def test_bad_records_name_the_field(fmt, rec, field):
    with pytest.raises(FieldError) as e:
        to_messages(rec, fmt)
    assert e.value.field == field
