"""N-gram overlap metrics on token sequences (characters or words): BLEU, ROUGE, Distinct.

Pure Python with no tokenisation of their own: the dialogue module decides what a token is.

BLEU (Papineni et al. 2002) is corpus-level: clipped n-gram matches and hypothesis n-gram
counts are summed over all examples before the modified precisions p_1..p_N are combined,
and the brevity penalty uses the summed lengths. Cumulative BLEU-n = BP * exp(mean_k log p_k)
for k = 1..n. Smoothing for zero counts:
  - "none": any p_k = 0 makes BLEU-n 0 (the original definition);
  - "add1": p_k = (m_k + 1) / (c_k + 1) for k >= 2, p_1 unsmoothed (Lin & Och 2004, as
    torchmetrics' `smooth=True`); BLEU is still 0 when there is no unigram match.
The sentence-level variant with NIST geometric smoothing ("method3" in NLTK's
SmoothingFunction) reproduces LLaMA-Factory's reported `bleu-4`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Literal

Smoothing = Literal["none", "add1"]
Tokens = Sequence[Hashable]


def ngram_counts(tokens: Tokens, n: int) -> Counter[tuple[Hashable, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _clipped(hyp: Tokens, ref: Tokens, n: int) -> tuple[int, int]:
    h, r = ngram_counts(hyp, n), ngram_counts(ref, n)
    return sum(min(c, r[g]) for g, c in h.items()), sum(h.values())


def _brevity_penalty(hyp_len: int, ref_len: int) -> float:
    if hyp_len == 0:
        return 0.0
    return 1.0 if hyp_len > ref_len else math.exp(1.0 - ref_len / hyp_len)


def corpus_bleu(
    hyps: Sequence[Tokens], refs: Sequence[Tokens], max_n: int = 4, smoothing: Smoothing = "none"
) -> list[float]:
    """Cumulative corpus BLEU-1..BLEU-max_n, one reference per hypothesis."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    matches, totals = [0] * max_n, [0] * max_n
    hyp_len = sum(len(h) for h in hyps)
    ref_len = sum(len(r) for r in refs)
    for hyp, ref in zip(hyps, refs, strict=True):
        for k in range(max_n):
            m, c = _clipped(hyp, ref, k + 1)
            matches[k] += m
            totals[k] += c
    bp = _brevity_penalty(hyp_len, ref_len)
    logs: list[float | None] = []
    for k in range(max_n):
        m, c = matches[k], totals[k]
        if smoothing == "add1" and k > 0 and matches[0] > 0:
            m, c = m + 1, c + 1
        logs.append(math.log(m / c) if m > 0 and c > 0 else None)
    scores = []
    for n in range(1, max_n + 1):
        part = logs[:n]
        if bp == 0.0 or any(x is None for x in part):
            scores.append(0.0)
        else:
            scores.append(bp * math.exp(sum(x for x in part if x is not None) / n))
    return scores


def sentence_bleu_nist(hyp: Tokens, ref: Tokens, max_n: int = 4) -> float:
    """Sentence BLEU-max_n with NIST geometric smoothing: the i-th order whose match count
    is zero gets precision 1 / (2^i * c_k). Zero when no unigram matches (NLTK's rule)."""
    hyp_len, ref_len = len(hyp), len(ref)
    precisions, zeros = [], 0
    first_matches = None
    for k in range(1, max_n + 1):
        m, c = _clipped(hyp, ref, k)
        c = max(1, c)
        if first_matches is None:
            first_matches = m
        if m == 0:
            zeros += 1
            precisions.append(1.0 / (2**zeros * c))
        else:
            precisions.append(m / c)
    if not first_matches:
        return 0.0
    bp = _brevity_penalty(hyp_len, ref_len)
    return bp * math.exp(sum(math.log(p) for p in precisions) / max_n)


def _f1(hits: int, hyp_total: int, ref_total: int) -> float:
    if hyp_total == 0 or ref_total == 0 or hits == 0:
        return 0.0
    p, r = hits / hyp_total, hits / ref_total
    return 2 * p * r / (p + r)


def rouge_n(hyp: Tokens, ref: Tokens, n: int) -> float:
    """ROUGE-N F1 with clipped (multiset) n-gram overlap, as Lin (2004) and rouge-score."""
    h, r = ngram_counts(hyp, n), ngram_counts(ref, n)
    hits = sum(min(c, r[g]) for g, c in h.items())
    return _f1(hits, sum(h.values()), sum(r.values()))


def lcs_length(a: Tokens, b: Tokens) -> int:
    """Length of the longest common subsequence (O(len(a) * len(b)) time, O(len(b)) memory)."""
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, start=1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(hyp: Tokens, ref: Tokens) -> float:
    """ROUGE-L F1 (beta = 1) from the LCS of the whole sequences."""
    if not hyp or not ref:
        return 0.0
    return _f1(lcs_length(hyp, ref), len(hyp), len(ref))


def distinct_n(seqs: Sequence[Tokens], n: int) -> float:
    """Distinct-n (Li et al. 2016): unique n-grams / all n-grams over every sequence."""
    seen: set[tuple[Hashable, ...]] = set()
    total = 0
    for seq in seqs:
        grams = [tuple(seq[i : i + n]) for i in range(len(seq) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0
