"""`mcq`: the answer shapes models write, exact-set match, partial credit, and hack probes."""

from __future__ import annotations

import pytest

from chimed_lit.eval.prompts import mcq_question
from chimed_lit.eval.readers_mcq import read_ceval_cmmlu, read_cmexam, read_cnmleqa
from chimed_lit.rewards import length, mcq, repetition
from chimed_lit.rewards.base import RewardNotApplicable
from tests.conftest import shared
from tests.rewards import records

ALL_TEXTS = "、".join(records.OPTIONS.values())
ECHO = "\n".join(f"{k}. {v}" for k, v in records.OPTIONS.items())


@pytest.mark.parametrize(
    "response",
    [
        "C",
        "c",
        "C。",
        "答案：C",
        "正确答案是 C。",
        "选C",
        "我选C，因为出血量决定表现。",
        "（C）",
        "正确答案（C）",
        "\\boxed{C}",
        "最终答案：$\\boxed{\\text{C}}$",
        "出血量",
        "答案是出血量",
        "答案：C。答案：C",  # repeated, but consistent
        ECHO + "\n答案：C",  # options echoed, then an explicit answer
    ],
)
def test_correct_answer_shapes_score_one(response: str) -> None:
    assert mcq.score(records.mcq("C"), response) == 1.0


@pytest.mark.parametrize(
    "response",
    [
        "",
        "   ",
        "B",  # wrong
        "ABCDE",  # every option
        "A B C D E",
        "A、B、C、D、E",
        "答案：ABCDE",
        ALL_TEXTS,  # every option's text
        ECHO,  # the option list echoed back
        "答案：B 答案：C",  # statements that disagree
        "答案：C 答案：B",
        "\\boxed{B} 所以答案：C",
        "B或C",  # hedges
        "C还是B",
        "可能是B也可能是C",
        "C or B",
        "我不确定",
    ],
)
def test_wrong_empty_and_gamed_answers_score_zero(response: str) -> None:
    assert mcq.score(records.mcq("C"), response) == 0.0
    assert mcq.score(records.mcq("C"), response, partial_credit=True) == 0.0


def test_multi_answer_exact_set_and_partial_credit() -> None:
    rec = records.mcq("AC")
    for response in ("AC", "CA", "A、C", "答案：A和C", "\\boxed{AC}"):
        assert mcq.score(rec, response) == 1.0, response
    assert mcq.score(rec, "A") == 0.0
    assert mcq.score(rec, "A", partial_credit=True) == 0.5  # |{A}| / |{A, C}|
    assert mcq.score(rec, "ABC", partial_credit=True) == 0.0  # a wrong letter: nothing
    assert mcq.score(rec, "ABCDE", partial_credit=True) == 0.0
    three = records.mcq("ABD")
    assert mcq.score(three, "B、D", partial_credit=True) == pytest.approx(2 / 3)


def test_repeated_and_very_long_answers_are_penalised_elsewhere() -> None:
    """mcq pays a correct letter however it is wrapped; length and repetition are what make
    a looping or rambling answer cost (the composite adds them)."""
    rec = records.mcq("C")
    looping = "答案：C " * 60
    rambling = "C。" + "出血的表现与很多因素有关，需要结合临床综合判断。" * 200
    assert mcq.score(rec, looping) == 1.0
    assert repetition.score(rec, looping) < 0.1
    assert length.score(rec, looping, max_chars=32) < 0.1
    assert mcq.score(rec, rambling) == 1.0
    assert length.score(rec, rambling, max_chars=32) == 0.0
    assert repetition.score(rec, rambling) < 0.1
    # a long answer that mentions every letter without committing reads as no answer
    assert mcq.score(rec, "A项不对，B项也不全面，C项或许，D项、E项都有可能。" * 20) == 0.0


def test_not_applicable_to_other_tasks_or_without_gold() -> None:
    with pytest.raises(RewardNotApplicable, match="task is free"):
        mcq.score(records.free(), "C")
    bad = records.mcq("C")
    bad["gold"] = {"answers": [], "options": records.OPTIONS}
    with pytest.raises(RewardNotApplicable, match="gold answer"):
        mcq.score(bad, "C")


def _unambiguous_text(example) -> str | None:
    """The gold option's text when naming it cannot be read as another option."""
    (gold,) = example.answers
    text = example.options[gold]
    others = [v for k, v in example.options.items() if k != gold]
    clash = any(text in o or o in text for o in others) or text in example.question
    return None if clash or not text.strip() else text


@pytest.mark.parametrize(
    ("reader", "rel"),
    [
        (read_cmexam, "mcq/cmexam_val.csv"),
        (read_ceval_cmmlu, "mcq/cmmlu_medical_test.csv"),
        (read_cnmleqa, "mcq/cnmleqa_3k_2017.json"),
    ],
)
def test_real_questions(reader, rel: str) -> None:
    """On the shared CMExam, CMMLU and CNMLEQA questions: the gold letter and the gold
    option's text score 1, a wrong letter, every letter and the prompt echoed back score 0."""
    examples = reader(shared(rel)).examples[:150]
    assert examples
    by_text = 0
    for ex in examples:
        rec = records.mcq_from(ex)
        gold = "".join(sorted(ex.answers))
        wrong = next(k for k in ex.options if k not in ex.answers)
        assert mcq.score(rec, f"答案：{gold}") == 1.0, ex.source_line
        assert mcq.score(rec, f"{gold}。") == 1.0, ex.source_line
        assert mcq.score(rec, wrong) == 0.0, ex.source_line
        assert mcq.score(rec, "".join(ex.options)) == 0.0, ex.source_line
        assert mcq.score(rec, mcq_question(ex)) == 0.0, ex.source_line
        text = _unambiguous_text(ex) if len(ex.answers) == 1 else None
        if text is not None:
            assert mcq.score(rec, f"正确答案是{text}。") == 1.0, ex.source_line
            by_text += 1
    assert by_text > len(examples) // 2
