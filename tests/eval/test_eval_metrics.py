"""Metric functions against hand-computed values, and against torchmetrics / NLTK /
rouge_chinese where they overlap."""

from __future__ import annotations

import math
import warnings

import pytest

from chimed_lit.eval.metrics_dialogue import _rouge_zh, dialogue_metrics, word_tokens
from chimed_lit.eval.metrics_mcq import mcq_accuracy
from chimed_lit.eval.metrics_ner import ner_scores
from chimed_lit.eval.ngram_metrics import (
    corpus_bleu,
    distinct_n,
    lcs_length,
    rouge_l,
    rouge_n,
    sentence_bleu_nist,
)

HYP, REF = list("我爱北京"), list("我爱上海北京")
BP = math.exp(1 - 6 / 4)  # c = 4, r = 6


def test_ner_micro_and_per_type() -> None:
    gold = [{("头痛", "sym"), ("阿司匹林", "dru")}, {("肺", "bod")}]
    pred = [
        [("头痛", "sym"), ("发热", "sym"), ("阿司匹林", "sym")],  # right, spurious, wrong type
        [("肺", "bod"), ("肺", "bod")],  # duplicates count once
    ]
    s = ner_scores(gold, pred)
    # tp = 2, predicted = 3 + 1 = 4, gold = 2 + 1 = 3
    assert s["precision"] == pytest.approx(0.5)
    assert s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(4 / 7)
    per = s["per_type"]
    assert per["sym"]["precision"] == pytest.approx(1 / 3) and per["sym"]["recall"] == 1.0
    assert per["sym"]["f1"] == pytest.approx(0.5)
    assert per["dru"]["f1"] == 0.0 and per["dru"]["n_gold"] == 1
    assert per["bod"]["f1"] == 1.0
    assert ner_scores([set()], [set()])["f1"] == 0.0
    with pytest.raises(ValueError):
        ner_scores([set()], [])


def test_mcq_exact_set_and_subjects() -> None:
    gold = [{"A"}, {"B", "C"}, {"D"}, {"A"}, {"B", "C"}]
    pred = [{"A"}, {"B"}, {"D"}, None, {"C", "B"}]
    subj = ["x", "x", "y", "y", None]
    s = mcq_accuracy(gold, pred, subj)
    assert s["accuracy"] == pytest.approx(3 / 5)
    assert s["per_subject"] == {"x": 0.5, "y": 0.5}  # None subject: overall only
    assert s["n_unanswered"] == 1 and s["n_correct"] == 3


def test_bleu_by_hand() -> None:
    # p1 = 4/4, p2 = 2/3 (我爱, 北京), p3 = 0/2, p4 = 0/1; BP = exp(1 - 6/4)
    b = corpus_bleu([HYP], [REF])
    assert b[0] == pytest.approx(BP)
    assert b[1] == pytest.approx(BP * math.sqrt(2 / 3))
    assert b[2] == 0.0 and b[3] == 0.0
    # add-one for n >= 2: p2 = 3/4, p3 = 1/3, p4 = 1/2
    s = corpus_bleu([HYP], [REF], smoothing="add1")
    assert s[0] == pytest.approx(BP)
    assert s[1] == pytest.approx(BP * math.sqrt(3 / 4))
    assert s[2] == pytest.approx(BP * (3 / 4 * 1 / 3) ** (1 / 3))
    assert s[3] == pytest.approx(BP * (3 / 4 * 1 / 3 * 1 / 2) ** (1 / 4))
    assert corpus_bleu([[]], [REF]) == [0.0] * 4
    # corpus level: counts are pooled, not per-sentence scores averaged
    pooled = corpus_bleu([HYP, list("上海")], [REF, list("上海")], max_n=1)[0]
    assert pooled == pytest.approx(math.exp(1 - 8 / 6))


def test_sentence_bleu_nist_by_hand() -> None:
    # zero orders 3 and 4 become 1/(2*2) and 1/(4*1)
    expected = BP * (1 * (2 / 3) * (1 / 4) * (1 / 4)) ** 0.25
    assert sentence_bleu_nist(HYP, REF) == pytest.approx(expected)
    assert sentence_bleu_nist(list("甲乙"), list("丙丁")) == 0.0


def test_rouge_and_distinct_by_hand() -> None:
    assert rouge_n(HYP, REF, 1) == pytest.approx(0.8)  # P = 1, R = 4/6
    assert rouge_n(HYP, REF, 2) == pytest.approx(0.5)  # P = 2/3, R = 2/5
    assert lcs_length(HYP, REF) == 4
    assert rouge_l(HYP, REF) == pytest.approx(0.8)
    assert rouge_n(list("啊啊啊"), list("啊"), 1) == pytest.approx(0.5)  # clipped: P 1/3, R 1
    assert distinct_n([list("我爱北京"), list("我我")], 1) == pytest.approx(4 / 6)
    assert distinct_n([list("我爱北京"), list("我我")], 2) == pytest.approx(1.0)
    assert distinct_n([[]], 2) == 0.0


def test_llama_factory_word_rouge_uses_unique_ngrams() -> None:
    # sets {a, b} vs {a, c}: P = R = 1/2 (a multiset count would give P = 1/3)
    assert _rouge_zh(["a", "b", "a"], ["a", "c"], 1) == pytest.approx(0.5, abs=1e-6)
    assert _rouge_zh([], ["a"], 1) == 0.0
    assert _rouge_zh(["a", "b", "c"], ["a", "c"], None) == pytest.approx(0.8, abs=1e-6)


def test_dialogue_metrics_keys_and_values() -> None:
    m = dialogue_metrics(["我爱 北京"], ["我爱上海北京"])
    for key in (
        "bleu_1",
        "bleu_2",
        "bleu_3",
        "bleu_4",
        "rouge_1",
        "rouge_2",
        "rouge_l",
        "bleu_4_word",
        "rouge_l_word",
        "distinct_1",
        "distinct_2",
    ):
        assert 0.0 <= m[key] <= 1.0, key
    assert m["bleu_1"] == pytest.approx(BP)  # the space is not a character token
    assert m["rouge_1"] == pytest.approx(0.8)
    with pytest.raises(ValueError):
        dialogue_metrics(["a"], [])


PAIRS = [
    (
        "患者应当多喝水，注意休息，必要时服用退热药。",
        "建议多喝水，注意休息，体温超过38.5度时服用退热药。",
    ),
    ("高血压病人可以吃党参，但要监测血压。", "高血压病人可以适量服用党参，同时定期监测血压。"),
    ("建议尽快到医院就诊，做血常规检查。", "建议到医院做血常规和胸部CT检查。"),
]


def test_bleu_agrees_with_torchmetrics() -> None:
    from torchmetrics.text import BLEUScore

    hyps = [" ".join(p) for p, _ in PAIRS]
    refs = [[" ".join(r)] for _, r in PAIRS]
    ours = corpus_bleu([list(p) for p, _ in PAIRS], [list(r) for _, r in PAIRS])
    ours_add1 = corpus_bleu(
        [list(p) for p, _ in PAIRS], [list(r) for _, r in PAIRS], smoothing="add1"
    )
    for n in range(1, 5):
        theirs = BLEUScore(n_gram=n)(hyps, refs).item()
        assert ours[n - 1] == pytest.approx(theirs, abs=1e-6), n
        # every n-gram order has a match here, the only case where torchmetrics smooths
        theirs_s = BLEUScore(n_gram=n, smooth=True)(hyps, refs).item()
        assert ours_add1[n - 1] == pytest.approx(theirs_s, abs=1e-6), n


def test_rouge_agrees_with_torchmetrics() -> None:
    from torchmetrics.text import ROUGEScore

    rouge = ROUGEScore(
        rouge_keys=("rouge1", "rouge2", "rougeL"), normalizer=lambda s: s, tokenizer=str.split
    )
    got = rouge([" ".join(p) for p, _ in PAIRS], [" ".join(r) for _, r in PAIRS])
    ours = dialogue_metrics([p for p, _ in PAIRS], [r for _, r in PAIRS], word_level=False)
    assert ours["rouge_1"] == pytest.approx(got["rouge1_fmeasure"].item(), abs=1e-6)
    assert ours["rouge_2"] == pytest.approx(got["rouge2_fmeasure"].item(), abs=1e-6)
    assert ours["rouge_l"] == pytest.approx(got["rougeL_fmeasure"].item(), abs=1e-6)


def test_llama_factory_metrics_agree_with_nltk_and_rouge_chinese() -> None:
    """bleu_4_sent_char is LLaMA-Factory's `bleu-4`; *_word ROUGE is its rouge_chinese call."""
    bleu = pytest.importorskip("nltk.translate.bleu_score")
    rouge_chinese = pytest.importorskip("rouge_chinese")
    pytest.importorskip("jieba")
    smooth = bleu.SmoothingFunction().method3
    ours = dialogue_metrics([p for p, _ in PAIRS], [r for _, r in PAIRS])
    ref_bleu = [bleu.sentence_bleu([list(r)], list(p), smoothing_function=smooth) for p, r in PAIRS]
    assert ours["bleu_4_sent_char"] == pytest.approx(sum(ref_bleu) / len(PAIRS), abs=1e-9)
    words = [(word_tokens(p), word_tokens(r)) for p, r in PAIRS]
    ref_wbleu = [bleu.sentence_bleu([r], p, smoothing_function=smooth) for p, r in words]
    assert ours["bleu_4_word"] == pytest.approx(sum(ref_wbleu) / len(PAIRS), abs=1e-9)
    scorer = rouge_chinese.Rouge()
    for key, theirs_key in (
        ("rouge_1_word", "rouge-1"),
        ("rouge_2_word", "rouge-2"),
        ("rouge_l_word", "rouge-l"),
    ):
        theirs = [scorer.get_scores(" ".join(p), " ".join(r))[0][theirs_key]["f"] for p, r in words]
        assert ours[key] == pytest.approx(sum(theirs) / len(PAIRS), abs=1e-9), key


@pytest.mark.parametrize(
    ("hyp", "ref"),
    [
        ("我", "我爱你"),
        ("我爱", "我爱你"),
        ("", "我"),
        ("我爱你中国", "我爱你中国"),
        ("你好你好你好", "你好"),
    ],
)
def test_sentence_bleu_edge_cases_match_nltk(hyp: str, ref: str) -> None:
    bleu = pytest.importorskip("nltk.translate.bleu_score")
    smooth = bleu.SmoothingFunction().method3
    with warnings.catch_warnings():  # NLTK warns about zero counts
        warnings.simplefilter("ignore")
        theirs = bleu.sentence_bleu([list(ref)], list(hyp), smoothing_function=smooth)
    assert sentence_bleu_nist(list(hyp), list(ref)) == pytest.approx(theirs, abs=1e-12)
