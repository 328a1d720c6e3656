"""NER scores: micro precision/recall/F1 over (surface, type) pairs, the unit a generative
extractor can be held to (it returns strings, not offsets).

Per example, gold and predicted pairs are sets (a surface repeated in one sentence counts
once); true positives, predicted and gold counts are summed over examples before dividing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

Pair = tuple[str, str]  # (surface, type)


def _prf(tp: int, n_pred: int, n_gold: int) -> dict[str, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "tp": tp, "n_pred": n_pred, "n_gold": n_gold}


def ner_scores(
    gold: Sequence[Iterable[Pair]], predicted: Sequence[Iterable[Pair]]
) -> dict[str, object]:
    """Micro P/R/F1 plus `per_type` {type: {precision, recall, f1, ...}}."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold examples but {len(predicted)} predictions")
    tp, n_pred, n_gold = Counter[str](), Counter[str](), Counter[str]()
    for g_raw, p_raw in zip(gold, predicted, strict=True):
        g, p = set(g_raw), set(p_raw)
        for _, etype in g:
            n_gold[etype] += 1
        for _, etype in p:
            n_pred[etype] += 1
        for _, etype in g & p:
            tp[etype] += 1
    out: dict[str, object] = dict(
        _prf(sum(tp.values()), sum(n_pred.values()), sum(n_gold.values()))
    )
    types = sorted(set(n_gold) | set(n_pred))
    out["per_type"] = {t: _prf(tp[t], n_pred[t], n_gold[t]) for t in types}
    return out
