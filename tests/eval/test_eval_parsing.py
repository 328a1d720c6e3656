"""Answer parsers: the shapes models actually produce, and refusals to guess."""

from __future__ import annotations

import pytest

from chimed_lit.eval.parsing import (
    entity_chunks,
    parse_choice_letters,
    parse_entity_lines,
    parse_scale_answer,
    says_no_entities,
    stated_choices,
)

OPTS = ["非常同意", "同意", "不确定", "不同意", "非常不同意"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("B", {"B"}),
        ("答案：AC", {"A", "C"}),
        ("正确答案是 D。", {"D"}),
        ("(B) 出血部位", {"B"}),
        ("A、C", {"A", "C"}),
        ("我认为取决于出血量", {"C"}),  # the option text, quoted verbatim
        ("A错，B对", set()),  # two letters and no explicit answer: not guessed
        ("A型血的人", set()),  # a letter inside a word is not an answer
        ("应该是C。", {"C"}),
        ("", set()),
    ],
)
def test_choice_letters(text: str, expected: set[str]) -> None:
    options = {"A": "原发病", "B": "出血部位", "C": "出血量", "D": "停留时间"}
    assert parse_choice_letters(text, "ABCD", options) == frozenset(expected)


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("B", 1),
        ("答案是C", 2),
        ("（E）", 4),
        ("我非常不同意这个说法", 4),  # longest match: not read as 同意 or 不同意
        ("不同意。", 3),
        ("我同意", 1),
        ("2", 1),
        ("9", None),
        ("好的", None),
    ],
)
def test_scale_answer(text: str, position: int | None) -> None:
    assert parse_scale_answer(text, OPTS) == position


def test_scale_answer_uses_shown_order() -> None:
    reversed_opts = OPTS[::-1]
    assert parse_scale_answer("非常同意", reversed_opts) == 4
    assert parse_scale_answer("A", reversed_opts) == 0


def test_entity_lines() -> None:
    names = {"临床表现": "sym", "药物": "dru", "身体部位": "bod", "sym": "sym"}
    text = (
        "1. 头痛：临床表现\n- 阿司匹林:药物\n肺（身体部位）\n胃；肝：身体部位\n发热：sym\n无\n"
        "不是实体行"
    )
    assert parse_entity_lines(text, names) == {
        ("头痛", "sym"),
        ("阿司匹林", "dru"),
        ("肺", "bod"),
        ("肝", "bod"),
        ("发热", "sym"),
    }
    assert parse_entity_lines("无", names) == set()
    assert parse_entity_lines("咳嗽：症状", names) == {("咳嗽", "症状")}  # unknown type kept


def test_choice_letters_boxed_and_lettered_option_texts() -> None:
    options = {"A": "MRI", "B": "CT", "C": "X线", "D": "B超"}
    assert parse_choice_letters("\\boxed{C}", "ABCD", options) == {"C"}
    assert parse_choice_letters("答案：$\\boxed{\\text{A, C}}$", "ABCD", options) == {"A", "C"}
    assert parse_choice_letters("正确答案是B超。", "ABCD", options) == {"D"}  # not option B
    assert parse_choice_letters("答案是B。", "ABCD", options) == {"B"}
    assert parse_choice_letters("首选X线", "ABCD", options) == {"C"}


@pytest.mark.parametrize(
    ("text", "loose", "strict"),
    [
        ("答案：B 答案：C", {"B"}, set()),  # statements that disagree
        ("答案：B。答案：B", {"B"}, {"B"}),  # a repeat is not a contradiction
        ("\\boxed{B} 答案：C", {"C"}, set()),
        ("B或C", {"C"}, {"B", "C"}),  # a hedge reads as both letters
        ("可能是B也可能是C", {"C"}, set()),
        ("A. 原发病\nB. 出血部位\nC. 出血量\nD. 停留时间", {"A"}, set()),  # options echoed
        ("A. 原发病\nB. 出血部位\nC. 出血量\nD. 停留时间\n答案：C", {"C"}, {"C"}),
        ("应首选\nA. 原发病", {"A"}, {"A"}),  # a statement across a line break is not one
        ("A型血的人", set(), set()),
    ],
)
def test_choice_letters_strict(text: str, loose: set[str], strict: set[str]) -> None:
    options = {"A": "原发病", "B": "出血部位", "C": "出血量", "D": "停留时间"}
    assert parse_choice_letters(text, "ABCD", options) == frozenset(loose)
    assert parse_choice_letters(text, "ABCD", options, strict=True) == frozenset(strict)


def test_stated_choices_lists_every_statement() -> None:
    assert stated_choices("答案：B，\\boxed{C}，选A和D", "ABCD") == [{"B"}, {"C"}, {"A", "D"}]
    assert stated_choices("B", "ABCD") == []


def test_entity_chunks_and_no_entity_reply() -> None:
    assert entity_chunks("1. 头痛：临床表现；发热：临床表现\n\n- 无关的话。") == [
        "头痛：临床表现",
        "发热：临床表现",
        "无关的话",
    ]
    assert says_no_entities("无。") and says_no_entities("无实体")
    assert not says_no_entities("") and not says_no_entities("无\n头痛：临床表现")
