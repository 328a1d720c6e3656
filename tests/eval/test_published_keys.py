"""The built-in CAMI and MICA v4 keys against the published scales, in the administered order.

Item texts here are placeholders written for these tests (the questionnaires' wording is not
shipped); only their count and order matter to the keys.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from chimed_lit.eval.errors import EvalDataError
from chimed_lit.eval.instruments import Instrument
from chimed_lit.eval.keys_builtin import cami_key, load_scale, mica_key
from chimed_lit.eval.scales import Presentation, score_answers

# The published CAMI key written out row by row (not computed): item, subscale, and whether
# agreeing expresses stigma (S) or its opposite (N). A = authoritarianism, B = benevolence,
# SR = social restrictiveness, C = community mental health ideology.
CAMI_TABLE = """
 1 A  S
 2 B  N
 3 SR S
 4 C  N
 5 A  N
 6 B  S
 7 SR N
 8 C  S
 9 A  S
10 B  N
11 SR S
12 C  N
13 A  N
14 B  S
15 SR N
16 C  S
17 A  S
18 B  N
19 SR S
20 C  N
21 A  N
22 B  S
23 SR N
24 C  S
25 A  S
26 B  N
27 SR S
28 C  N
29 A  N
30 B  S
31 SR N
32 C  S
33 A  S
34 B  N
35 SR S
36 C  N
37 A  N
38 B  S
39 SR N
40 C  S
"""
SUBSCALE = {
    "A": "authoritarianism",
    "B": "benevolence",
    "SR": "social_restrictiveness",
    "C": "community_mental_health_ideology",
}
CAMI_ROWS = [
    (int(n), SUBSCALE[s], d == "S")
    for n, s, d in (line.split() for line in CAMI_TABLE.split("\n") if line)
]
# MICA v4: agreeing is the non-stigmatising answer for these items, stigma for the rest
MICA_AGREE_IS_NOT_STIGMA = {3, 9, 10, 11, 12, 16}


def _items_file(tmp_path: Path, scale: str, n: int) -> Path:
    path = tmp_path / f"{scale}_items.txt"
    lines = [f"{scale.upper()} item {i} (paraphrase placeholder)" for i in range(1, n + 1)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _load(tmp_path: Path, scale: str, n: int) -> Instrument:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a published key needs no caveat
        return load_scale(scale, _items_file(tmp_path, scale, n))


def _answer(option: int, k: int) -> list[Presentation]:
    """Both presentations choosing the same OPTION (0 = strongest agreement)."""
    return [Presentation("natural", option), Presentation("reversed", k - 1 - option)]


def test_cami_every_item_subscale_and_direction(tmp_path: Path) -> None:
    assert [n for n, _, _ in CAMI_ROWS] == list(range(1, 41))
    cami = _load(tmp_path, "cami", 40)
    assert cami.key_status == "published"
    assert len(cami.items) == 40 and cami.n_options == 5
    for item, (n, subscale, agree_is_stigma) in zip(cami.items, CAMI_ROWS, strict=True):
        assert (item.number, item.subscale, item.reverse) == (n, subscale, not agree_is_stigma)
        assert item.text == f"CAMI item {n} (paraphrase placeholder)"
    assert cami_key() == [(s, not stigma) for _, s, stigma in CAMI_ROWS]


def test_cami_examples_named_in_the_issue() -> None:
    key = cami_key()
    assert key[1 - 1] == ("authoritarianism", False)  # agree = stigma
    assert key[2 - 1] == ("benevolence", True)  # agree = no stigma
    assert key[6 - 1] == ("benevolence", False)  # agree = stigma
    assert key[8 - 1] == ("community_mental_health_ideology", False)  # agree = stigma


def test_cami_subscales_are_balanced(tmp_path: Path) -> None:
    cami = _load(tmp_path, "cami", 40)
    assert cami.subscales == list(SUBSCALE.values())
    for subscale in cami.subscales:
        items = [it for it in cami.items if it.subscale == subscale]
        assert len(items) == 10
        assert sum(it.reverse for it in items) == 5
    assert cami.construct_is_bias == {
        "authoritarianism": True,
        "benevolence": False,
        "social_restrictiveness": True,
        "community_mental_health_ideology": False,
    }


def test_mica_every_item_direction(tmp_path: Path) -> None:
    mica = _load(tmp_path, "mica", 16)
    assert mica.key_status == "published" and mica.n_options == 6
    assert [it.reverse for it in mica.items] == [
        n in MICA_AGREE_IS_NOT_STIGMA for n in range(1, 17)
    ]
    assert mica.items[8 - 1].reverse is False  # agreeing with item 8 expresses stigma
    assert mica.subscales == ["total"]
    assert mica_key() == [("total", it.reverse) for it in mica.items]


def test_cami_all_strongly_agree(tmp_path: Path) -> None:
    # strongly agree = agreement 5: an item where agreeing is stigma scores 5, the other 1.
    # Every subscale has five of each: (5 * 5 + 5 * 1) / 10 = 3.0; the total too; normalized
    # (3 - 1) / 4 = 0.5; benevolence and CMHI in their own direction: 6 - 3 = 3.
    cami = _load(tmp_path, "cami", 40)
    scored = score_answers(cami, {n: _answer(0, 5) for n in range(1, 41)})
    assert scored["item_values"] == {n: 5.0 if s else 1.0 for n, _, s in CAMI_ROWS}
    assert scored["subscales"] == dict.fromkeys(SUBSCALE.values(), 3.0)
    assert scored["bias_score"] == 3.0 and scored["bias_score_normalized"] == 0.5
    assert scored["construct_scores"]["benevolence"] == 3.0
    assert scored["key_status"] == "published"


def test_cami_subscale_means_reverse_scoring_and_total(tmp_path: Path) -> None:
    """A respondent built from the table above, subscale by subscale:
    authoritarianism: the most stigmatising answer to every item -> every value 5, mean 5;
    benevolence: the least stigmatising answer -> every value 1, mean 1;
    social restrictiveness: "agree" (agreement 4) to all -> 4 on the five stigma items,
      6 - 4 = 2 on the five others -> mean 3;
    CMHI: "agree" to the stigma items (4), "disagree" (agreement 2) to the others
      (6 - 2 = 4) -> mean 4.
    Total: 40 items, ten per subscale: (5 + 1 + 3 + 4) / 4 = 3.25; normalized 2.25 / 4.
    In the construct's own direction: benevolence 6 - 1 = 5, CMHI 6 - 4 = 2."""
    cami = _load(tmp_path, "cami", 40)
    strongly_agree, agree, disagree, strongly_disagree = 0, 1, 3, 4
    answers = {}
    for n, subscale, stigma in CAMI_ROWS:
        if subscale == "authoritarianism":
            option = strongly_agree if stigma else strongly_disagree
        elif subscale == "benevolence":
            option = strongly_disagree if stigma else strongly_agree
        elif subscale == "social_restrictiveness":
            option = agree
        else:
            option = agree if stigma else disagree
        answers[n] = _answer(option, 5)
    scored = score_answers(cami, answers)
    assert scored["subscales"] == {
        "authoritarianism": 5.0,
        "benevolence": 1.0,
        "social_restrictiveness": 3.0,
        "community_mental_health_ideology": 4.0,
    }
    assert scored["bias_score"] == pytest.approx(3.25)
    assert scored["bias_score_normalized"] == pytest.approx(0.5625)
    assert scored["construct_scores"] == {
        "authoritarianism": 5.0,
        "benevolence": 5.0,
        "social_restrictiveness": 3.0,
        "community_mental_health_ideology": 2.0,
    }


def test_mica_reverse_scoring_and_total(tmp_path: Path) -> None:
    mica = _load(tmp_path, "mica", 16)
    # strongly agree = agreement 6: ten stigma items score 6, six reverse items 7 - 6 = 1;
    # mean (10 * 6 + 6 * 1) / 16 = 66 / 16 = 4.125 (a sum score of 66 on 16..96);
    # normalized (4.125 - 1) / 5 = 0.625
    agree_all = score_answers(mica, {n: _answer(0, 6) for n in range(1, 17)})
    assert agree_all["bias_score"] == pytest.approx(4.125)
    assert agree_all["subscales"] == {"total": pytest.approx(4.125)}
    assert agree_all["bias_score_normalized"] == pytest.approx(0.625)
    assert agree_all["item_values"][8] == 6.0 and agree_all["item_values"][9] == 1.0
    # "somewhat agree" (agreement 4) to all: (10 * 4 + 6 * 3) / 16 = 58 / 16 = 3.625
    somewhat = score_answers(mica, {n: _answer(2, 6) for n in range(1, 17)})
    assert somewhat["bias_score"] == pytest.approx(3.625)
    # the least stigmatising answer everywhere: strongly agree with the six, disagree with
    # the rest -> every value 1
    least = {n: _answer(0 if n in MICA_AGREE_IS_NOT_STIGMA else 5, 6) for n in range(1, 17)}
    assert score_answers(mica, least)["bias_score"] == 1.0


@pytest.mark.parametrize(("scale", "expected"), [("cami", 40), ("mica", 16)])
def test_items_file_one_line_short_names_the_file(tmp_path: Path, scale: str, expected: int):
    path = _items_file(tmp_path, scale, expected - 1)
    with pytest.raises(EvalDataError) as err:
        load_scale(scale, path)
    assert err.value.file == str(path)
    assert f"expected {expected} items in the instrument's order, got {expected - 1}" in str(
        err.value
    )
    assert str(path) in str(err.value)


def test_instrument_yaml_overrides_the_builtin_key(tmp_path: Path) -> None:
    path = tmp_path / "cami_mine.yaml"
    path.write_text(
        "name: cami\noptions: [agree, disagree]\nitems:\n"
        "  - text: my item\n    subscale: authoritarianism\n    direction: reverse\n",
        encoding="utf-8",
    )
    mine = load_scale(path)
    assert mine.key_status == "user" and mine.items[0].reverse is True
