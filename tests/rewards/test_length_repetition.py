"""`length` and `repetition`: hand-computed values, the empty answer, loops and rambling."""

from __future__ import annotations

import pytest

from chimed_lit.rewards import length, repetition
from tests.rewards import records

REC = records.free()
ADVICE = (
    "高血压患者应限制食盐摄入，每日不超过五克；多吃新鲜蔬菜水果，戒烟限酒，规律服药并监测血压。"
)


def test_length_by_hand() -> None:
    opts = {"min_chars": 10, "max_chars": 100, "decay_chars": 100}
    assert length.score(REC, "x" * 50, **opts) == 1.0
    assert length.score(REC, "x" * 100, **opts) == 1.0
    assert length.score(REC, "x" * 5, **opts) == 0.5  # 5 / 10
    assert length.score(REC, "x" * 150, **opts) == 0.5  # 1 - 50 / 100
    assert length.score(REC, "x" * 250, **opts) == 0.0
    assert length.score(REC, "  " + "x" * 100 + "\n\n", **opts) == 1.0  # stripped
    assert length.score(REC, "x" * 1024) == 0.0  # defaults: twice max_chars=512


def test_length_empty_and_very_long() -> None:
    assert length.score(REC, "") == 0.0
    assert length.score(REC, ADVICE * 100, max_chars=200) == 0.0
    assert length.score(REC, ADVICE * 5, max_chars=200) == pytest.approx(
        1 - (len(ADVICE) * 5 - 200) / 200
    )


def test_length_problems() -> None:
    assert length.problems(min_chars=10, max_chars=5)
    assert length.problems(decay_chars=0)
    assert not length.problems(min_chars=0, max_chars=1)


def test_repetition_by_hand() -> None:
    # "abababab", bigrams: ab ba ab ba ab ba ab -> 7, 2 distinct: repeated 5/7
    assert repetition.repeated_fraction("abababab", n=2) == pytest.approx(5 / 7)
    assert repetition.score(REC, "abababab", n=2, tolerance=0.0) == pytest.approx(2 / 7)
    # tolerance 0.5: 1 - (5/7 - 0.5) / 0.5
    assert repetition.score(REC, "abababab", n=2, tolerance=0.5) == pytest.approx(
        1 - (5 / 7 - 0.5) / 0.5
    )


def test_repetition_probes() -> None:
    assert repetition.score(REC, ADVICE) == 1.0  # natural text
    assert repetition.score(REC, "") == 0.0
    assert repetition.score(REC, "B") == 1.0  # too short to repeat
    assert repetition.score(REC, "答案：C " * 50) < 0.1
    assert repetition.score(REC, ADVICE * 20) < 0.1
    assert repetition.score(REC, ADVICE * 2) < repetition.score(REC, ADVICE)
    assert repetition.problems(n=0) and repetition.problems(tolerance=1.0)
