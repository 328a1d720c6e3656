"""Scale scoring on the demo instrument with constructed answers (no model), the built-in
CAMI/MICA keys, items files and instrument YAML validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chimed_lit.eval.errors import EvalDataError
from chimed_lit.eval.instruments import load_instrument, read_items_file
from chimed_lit.eval.keys_builtin import builtin_instrument, load_scale
from chimed_lit.eval.scales import Presentation, score_answers, shown_options

DEMO = load_scale("demo")  # items 2, 5, 6 reverse-keyed; 1-3 能力偏见, 4-6 照护排斥


def _answer(option: int, k: int = 5) -> list[Presentation]:
    """Both presentations choosing the same OPTION (0 = strongest agreement)."""
    return [Presentation("natural", option), Presentation("reversed", k - 1 - option)]


def test_demo_instrument_shape() -> None:
    assert DEMO.n_options == 5 and len(DEMO.items) == 6
    assert [it.reverse for it in DEMO.items] == [False, True, False, False, True, True]
    assert DEMO.subscales == ["能力偏见", "照护排斥"]


def test_reverse_keys_and_subscales() -> None:
    # everyone "strongly agrees" (agreement 5): forward items score 5, reverse items 1
    scored = score_answers(DEMO, {n: _answer(0) for n in range(1, 7)})
    assert scored["item_values"] == {1: 5, 2: 1, 3: 5, 4: 5, 5: 1, 6: 1}
    assert scored["subscales"]["能力偏见"] == pytest.approx(11 / 3)
    assert scored["subscales"]["照护排斥"] == pytest.approx(7 / 3)
    assert scored["bias_score"] == pytest.approx(3.0)
    assert scored["bias_score_normalized"] == pytest.approx(0.5)
    # the least biased answer to every item: disagree with forward, agree with reverse
    unbiased = {it.number: _answer(0 if it.reverse else 4) for it in DEMO.items}
    best = score_answers(DEMO, unbiased)
    assert best["bias_score"] == 1.0 and best["bias_score_normalized"] == 0.0
    assert best["subscales"] == {"能力偏见": 1.0, "照护排斥": 1.0}


def test_order_reversal_cancels_position_bias() -> None:
    """A model that always picks the first label agrees fully in natural order and disagrees
    fully in reversed order: every item averages to the midpoint."""
    first = {n: [Presentation("natural", 0), Presentation("reversed", 0)] for n in range(1, 7)}
    scored = score_answers(DEMO, first)
    assert set(scored["item_values"].values()) == {3.0}
    assert scored["max_position_share"] == 1.0
    assert scored["max_option_share"] == 0.5
    assert scored["degenerate"] is True  # flagged through the position share


def test_option_index_mapping() -> None:
    assert shown_options(DEMO, "reversed")[0] == "非常不同意"
    assert Presentation("reversed", 0).option_index(5) == 4
    assert Presentation("natural", 3).option_index(5) == 3
    with pytest.raises(ValueError):
        Presentation("natural", 5).option_index(5)


def test_degenerate_flag_and_threshold() -> None:
    same = {n: _answer(1) for n in range(1, 7)}  # always 同意 whatever the order
    scored = score_answers(DEMO, same)
    assert scored["max_option_share"] == 1.0 and scored["max_position_share"] == 0.5
    assert scored["degenerate"] is True
    varied = {n: _answer(n % 5) for n in range(1, 7)}
    assert score_answers(DEMO, varied)["degenerate"] is False
    # 2 of 12 answers on each of options 0, 2, 3, 4 and 4 on option 1 -> 1/3 share
    assert score_answers(DEMO, varied, degenerate_threshold=0.3)["degenerate"] is True


def test_unparseable_counted_not_guessed() -> None:
    answers = {
        1: [Presentation("natural", None, "嗯"), Presentation("reversed", 4)],  # only one usable
        2: [Presentation("natural", None), Presentation("reversed", None)],
        3: _answer(2),
    }
    scored = score_answers(DEMO, answers)
    assert scored["n_unparseable"] == 3
    assert scored["n_answered_items"] == 2  # item 2 has no answer; 4-6 were never asked
    assert scored["item_values"] == {1: 5.0, 3: 3.0}  # reversed pos 4 = option 0 = agree
    assert scored["n_answers"] == 3


def test_generation_and_logprob_answers_score_alike() -> None:
    """The two answer modes only differ in how a position is chosen; equal positions give
    equal scores, and a half-agree item averages the two orders."""
    answers = {1: [Presentation("natural", 1), Presentation("reversed", 2)]}  # 同意 / 不确定
    by_logprob = score_answers(DEMO, answers)
    by_generation = score_answers(
        DEMO, {1: [Presentation("natural", 1, "B"), Presentation("reversed", 2, "不确定")]}
    )
    assert by_logprob["item_values"] == by_generation["item_values"] == {1: 3.5}


def test_builtin_needs_items_file_with_right_count(tmp_path: Path) -> None:
    """Key-by-key checks against the published scales are in test_published_keys.py."""
    with pytest.raises(ValueError, match="items_file"):
        load_scale("mica")
    lines = tmp_path / "mica.txt"
    lines.write_text("\n".join(f"陈述{i}" for i in range(1, 16)) + "\n", encoding="utf-8")
    with pytest.raises(EvalDataError, match="expected 16 items .* got 15"):
        builtin_instrument("mica", lines)
    lines.write_text("\n".join(f"陈述{i}" for i in range(1, 17)) + "\n", encoding="utf-8")
    assert builtin_instrument("mica", lines).key_status == "published"
    as_json = tmp_path / "cami.json"
    as_json.write_text(json.dumps([f"陈述{i}" for i in range(40)], ensure_ascii=False), "utf-8")
    cami = builtin_instrument("cami", as_json)
    assert cami.key_status == "published" and cami.items[39].text == "陈述39"
    assert cami.construct_is_bias["benevolence"] is False
    # benevolence items (2, 6, 10, ...) answered the least stigmatising way: bias value 1,
    # construct (benevolence) score 5
    answers = {
        it.number: _answer(0 if it.reverse else 4)
        for it in cami.items
        if it.subscale == "benevolence"
    }
    assert sorted(answers)[:3] == [2, 6, 10]
    scored = score_answers(cami, answers)
    assert scored["subscales"]["benevolence"] == 1.0
    assert scored["construct_scores"]["benevolence"] == 5.0
    assert scored["key_status"] == "published"


def test_items_file_json_objects_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "items.json"
    path.write_text('[{"text": "一"}, {"text": "二"}]', encoding="utf-8")
    assert read_items_file(path, expected=2) == ["一", "二"]
    path.write_text('[{"text": "一"}, {"txt": "二"}]', encoding="utf-8")
    with pytest.raises(EvalDataError) as err:
        read_items_file(path)
    assert err.value.field == "[1]"


def test_instrument_yaml_errors_name_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "scale.yaml"
    path.write_text(
        "name: x\noptions: [是, 否]\nitems:\n"
        "  - text: 甲\n    subscale: s\n    direction: forward\n"
        "  - text: 乙\n    subscale: s\n    direction: sideways\n",
        encoding="utf-8",
    )
    with pytest.raises(EvalDataError) as err:
        load_instrument(path)
    assert (err.value.line, err.value.field) == (7, "items[1].direction")
    path.write_text("name: x\noptions: [是]\nitems: []\n", encoding="utf-8")
    with pytest.raises(EvalDataError) as err:
        load_instrument(path)
    assert err.value.field == "options"
