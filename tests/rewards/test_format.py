"""`format`: the shape each task's prompt asks for, correctness aside."""

from __future__ import annotations

import pytest

from chimed_lit.rewards import format
from tests.rewards import records

GOLD = [("头痛", "sym"), ("阿司匹林", "dru")]


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("C", 1.0),
        ("答案：B", 1.0),  # wrong but well formed
        ("\\boxed{A}", 1.0),
        ("出血量", 1.0),  # the option's text
        ("", 0.0),
        ("  \n", 0.0),
        ("我不知道", 0.0),
        ("ABCDE", 0.0),  # every option at once
        ("A B C D E", 0.0),
        ("原发病、出血部位、出血量、在胃内停留时间、以上均非", 0.0),
        ("答案：B 答案：C", 0.0),
        ("B或C", 0.0),  # a hedge, where the prompt asks for one answer
        ("A、C", 0.0),
        ("C\n[human]:下一题是什么？", 0.0),  # ran on into the next turn
        ("C<|im_end|>\n<|im_start|>user", 0.0),
    ],
)
def test_mcq_shape(response: str, expected: float) -> None:
    assert format.score(records.mcq("C"), response) == expected


def test_mcq_multi_answer_shape() -> None:
    rec = records.mcq("AC")
    assert format.score(rec, "A、C") == 1.0
    assert format.score(rec, "A") == 1.0  # incomplete, but the shape asked for
    assert format.score(rec, "ABCDE") == 0.0


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("头痛：临床表现\n阿司匹林：药物", 1.0),
        ("头痛：sym", 1.0),  # a type code is a type the prompt offered too
        ("1. 头痛：临床表现\n2. 肺：身体部位", 1.0),  # wrong entity, right shape
        ("无", 1.0),
        ("", 0.0),
        ("头痛", 0.0),  # no type
        ("头痛：症状", 0.0),  # a type the prompt did not offer
        ("实体如下：\n头痛：临床表现", 0.0),  # prose around the lines
        ("头痛：临床表现\n以上就是全部实体", 0.0),
        ("无\n头痛：临床表现", 0.0),  # none and some at once
        ("头痛：临床表现\n[bot]:还有别的吗", 0.0),
    ],
)
def test_ner_shape(response: str, expected: float) -> None:
    assert format.score(records.ner(GOLD), response) == expected


def test_free_shape() -> None:
    rec = records.free()
    assert format.score(rec, "少盐少油，多吃蔬菜。") == 1.0
    assert format.score(rec, " ") == 0.0
    assert format.score(rec, "少盐。\n[human]:谢谢") == 0.0
