"""Dialogue-generation metrics, computed two ways so numbers compare with both lineages.

Character level (how Chinese medical-dialogue papers, ChiMed-GPT included, report them):
whitespace is dropped and every remaining character is a token; `bleu_1`..`bleu_4` are
cumulative corpus BLEU (see `ngram_metrics`), `rouge_1/2/l` per-example F1 averaged over
examples, `distinct_1/2` over all predictions.

Word level, as LLaMA-Factory's `compute_metrics` reports them (jieba words; ROUGE as the
`rouge_chinese` package computes it: unique n-grams per side, LCS over the whole text,
F = 2PR / (P + R + 1e-8); zero when either side has no words), averaged per example:
`rouge_1_word`, `rouge_2_word`, `rouge_l_word`, and `bleu_4_word`, sentence BLEU-4 with NIST
smoothing on jieba words. LLaMA-Factory's own `bleu-4` is that sentence BLEU on raw
characters (spaces kept); it is `bleu_4_sent_char` here.

Every score is in [0, 1] (LLaMA-Factory prints x100).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from .ngram_metrics import (
    Smoothing,
    corpus_bleu,
    distinct_n,
    lcs_length,
    rouge_l,
    rouge_n,
    sentence_bleu_nist,
)


def char_tokens(text: str) -> list[str]:
    """Characters with whitespace removed (a space is not content in Chinese text)."""
    return [c for c in text if not c.isspace()]


@lru_cache(maxsize=1)
def _jieba() -> Any:
    try:
        import jieba
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "word-level dialogue metrics need jieba: pip install jieba (or word_level=False)"
        ) from err
    jieba.setLogLevel(logging.WARNING)
    return jieba


def word_tokens(text: str) -> list[str]:
    """jieba words, whitespace dropped (what `" ".join(jieba.cut(t)).split()` gives)."""
    return " ".join(_jieba().cut(text)).split()


def _rouge_zh(hyp: list[str], ref: list[str], n: int | None) -> float:
    """rouge_chinese's F: unique n-grams (n given) or whole-text LCS (n None)."""
    if not hyp or not ref:
        return 0.0
    if n is None:
        hits, nh, nr = lcs_length(hyp, ref), len(hyp), len(ref)
    else:
        h = {tuple(hyp[i : i + n]) for i in range(len(hyp) - n + 1)}
        r = {tuple(ref[i : i + n]) for i in range(len(ref) - n + 1)}
        hits, nh, nr = len(h & r), len(h), len(r)
    p = hits / nh if nh else 0.0
    rec = hits / nr if nr else 0.0
    return 2.0 * (p * rec) / (p + rec + 1e-8)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def dialogue_metrics(
    predictions: Sequence[str],
    references: Sequence[str],
    smoothing: Smoothing = "none",
    word_level: bool = True,
) -> dict[str, float]:
    """All dialogue scores for paired predictions and references (see module docstring)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    hyps = [char_tokens(p) for p in predictions]
    refs = [char_tokens(r) for r in references]
    bleu = corpus_bleu(hyps, refs, max_n=4, smoothing=smoothing)
    out: dict[str, float] = {f"bleu_{n}": bleu[n - 1] for n in range(1, 5)}
    out["rouge_1"] = _mean([rouge_n(h, r, 1) for h, r in zip(hyps, refs, strict=True)])
    out["rouge_2"] = _mean([rouge_n(h, r, 2) for h, r in zip(hyps, refs, strict=True)])
    out["rouge_l"] = _mean([rouge_l(h, r) for h, r in zip(hyps, refs, strict=True)])
    out["distinct_1"] = distinct_n(hyps, 1)
    out["distinct_2"] = distinct_n(hyps, 2)
    out["bleu_4_sent_char"] = _mean(
        [sentence_bleu_nist(list(p), list(r)) for p, r in zip(predictions, references, strict=True)]
    )
    if word_level:
        wh = [word_tokens(p) for p in predictions]
        wr = [word_tokens(r) for r in references]
        pairs = list(zip(wh, wr, strict=True))
        out["bleu_4_word"] = _mean([sentence_bleu_nist(h, r) for h, r in pairs])
        out["rouge_1_word"] = _mean([_rouge_zh(h, r, 1) for h, r in pairs])
        out["rouge_2_word"] = _mean([_rouge_zh(h, r, 2) for h, r in pairs])
        out["rouge_l_word"] = _mean([_rouge_zh(h, r, None) for h, r in pairs])
    out["n"] = float(len(predictions))
    return out
