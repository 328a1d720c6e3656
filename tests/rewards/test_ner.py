"""`ner`: span-level F1 of (entity, type) pairs, on hand records and the shared CMeEE/CCKS."""

from __future__ import annotations

import pytest

from chimed_lit.eval.prompts import ner_answer
from chimed_lit.eval.readers_ner import read_ccks2019, read_cmeee
from chimed_lit.rewards import format, ner, repetition
from chimed_lit.rewards.base import RewardNotApplicable
from tests.conftest import shared
from tests.rewards import records

GOLD = [("头痛", "sym"), ("阿司匹林", "dru"), ("肺部", "bod")]
PERFECT = "头痛：临床表现\n阿司匹林：药物\n肺部：身体部位"


def test_perfect_answer_in_any_written_form_scores_one() -> None:
    rec = records.ner(GOLD)
    assert ner.score(rec, PERFECT) == 1.0
    assert ner.score(rec, "1. 头痛：sym\n2. 阿司匹林:dru\n- 肺部（身体部位）") == 1.0
    assert ner.score(rec, "头痛：临床表现；阿司匹林：药物；肺部：身体部位。") == 1.0


def test_f1_by_hand() -> None:
    rec = records.ner(GOLD)
    # 2 right, 1 wrong type, 1 extra: precision 2/4, recall 2/3, F1 = 2PR/(P+R) = 4/7
    response = "头痛：临床表现\n阿司匹林：药物\n肺部：药物\n缓解：临床表现"
    assert ner.score(rec, response) == pytest.approx(4 / 7)
    assert ner.score(rec, "头痛：临床表现") == pytest.approx(2 * 1 * (1 / 3) / (1 + 1 / 3))
    assert ner.score(rec, "头痛：药物") == 0.0  # right span, wrong type


def test_no_entity_texts() -> None:
    empty = records.ner([])
    assert ner.score(empty, "无") == 1.0
    assert ner.score(empty, "无实体。") == 1.0
    assert ner.score(empty, "") == 0.0  # silence is not the answer the prompt asks for
    assert ner.score(empty, "头痛：临床表现") == 0.0
    assert ner.score(records.ner(GOLD), "无") == 0.0


@pytest.mark.parametrize("response", ["", "   ", "无"])
def test_empty_answer_scores_zero(response: str) -> None:
    assert ner.score(records.ner(GOLD), response) == 0.0


def test_hack_probes() -> None:
    rec = records.ner(GOLD)
    # every gold surface under every type: recall 1, precision 1/3 -> F1 0.5, not 1
    every_type = "\n".join(f"{s}：{t}" for s, _ in GOLD for t in ("临床表现", "药物", "身体部位"))
    assert ner.score(rec, every_type) == pytest.approx(0.5)
    # every two-character window of the text, as every type: nearly all false positives
    text = "患者头痛，服用阿司匹林后缓解，肺部无异常。"
    windows = {text[i : i + 2] for i in range(len(text) - 1)}
    spray = "\n".join(f"{w}：{t}" for w in windows for t in ("临床表现", "药物", "身体部位"))
    assert ner.score(rec, spray) < 0.1
    # a repeated correct answer earns nothing more, and costs on repetition
    looping = "\n".join([PERFECT] * 30)
    assert ner.score(rec, looping) == 1.0
    assert repetition.score(rec, looping) < 0.1
    # a very long answer of prose around one right line: precision holds, format fails
    long = "根据文本分析如下：\n头痛：临床表现\n" + "其余内容无法确定。" * 300
    assert ner.score(rec, long) == pytest.approx(0.5)
    assert format.score(rec, long) == 0.0


def test_not_applicable() -> None:
    with pytest.raises(RewardNotApplicable, match="task is mcq"):
        ner.score(records.mcq("C"), "头痛：临床表现")
    rec = records.ner(GOLD)
    rec["gold"] = {"type_names": {}}
    with pytest.raises(RewardNotApplicable, match="gold entities"):
        ner.score(rec, "头痛：临床表现")


@pytest.mark.parametrize(
    ("reader", "rel"),
    [(read_cmeee, "ner/cmeee_v2_dev.json"), (read_ccks2019, "ner/ccks2019_yidu_s4k_train.jsonl")],
)
def test_real_records_round_trip(reader, rel: str) -> None:
    """The gold answer written as evaluation writes it (`eval.prompts.ner_answer`) scores 1 and
    passes the format check on the shared CMeEE and CCKS records; one entity dropped does not."""
    examples = reader(shared(rel), on_mismatch="skip").examples[:200]
    recs, code_to_name = records.ner_from(examples)
    dropped = 0
    for ex, rec in zip(examples, recs, strict=True):
        answer = ner_answer(ex, code_to_name)
        assert ner.score(rec, answer) == 1.0, answer
        assert format.score(rec, answer) == 1.0, answer
        lines = answer.splitlines()
        if len(rec["gold"]["entities"]) > 1:
            assert ner.score(rec, "\n".join(lines[1:])) < 1.0
            dropped += 1
    assert dropped > 20
