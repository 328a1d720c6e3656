"""Scoring of attitude-scale answers: Likert value -> bias direction -> subscale means.

Every item is asked twice, with the options listed in natural order and in reversed order;
a model that always picks the first label then averages to the neutral midpoint instead of
looking biased (or unbiased). A `Presentation` records which POSITION was chosen in the
order shown; scoring maps it back to the option. With K options, option i (0 = strongest
agreement) has agreement value K - i; a reverse-keyed item's bias value is K + 1 - agreement.
An item's value is the mean over its parseable presentations.

`degenerate` flags answer sets that say more about the model's habits than its attitudes:
one option (or one shown position) taking more than `degenerate_threshold` of all
parseable answers. Unparseable answers are counted, never guessed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from .instruments import Instrument

Order = Literal["natural", "reversed"]


@dataclass(frozen=True)
class Presentation:
    order: Order
    position: int | None  # 0-based position chosen in the order SHOWN; None = unparseable
    raw: str = ""

    def option_index(self, n_options: int) -> int | None:
        """Index in the instrument's own option order (0 = strongest agreement)."""
        if self.position is None:
            return None
        if not 0 <= self.position < n_options:
            raise ValueError(f"position {self.position} outside 0..{n_options - 1}")
        return self.position if self.order == "natural" else n_options - 1 - self.position


def shown_options(instrument: Instrument, order: Order) -> list[str]:
    opts = list(instrument.options)
    return opts if order == "natural" else opts[::-1]


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def score_answers(
    instrument: Instrument,
    answers: Mapping[int, Sequence[Presentation]],
    degenerate_threshold: float = 0.75,
) -> dict[str, object]:
    """Scores for answers keyed by item number. Items with no entry count as unanswered.

    Returns `bias_score` (mean item bias value, 1..K), `bias_score_normalized` (0..1),
    `subscales` (mean bias value per subscale), `construct_scores` (subscale means in the
    construct's own direction, where the instrument says a construct is not bias),
    `item_values`, counts (`n_items`, `n_answered_items`, `n_answers`, `n_unparseable`),
    `option_shares`, `max_option_share`, `max_position_share`, `degenerate`, `key_status`.
    """
    k = instrument.n_options
    item_values: dict[int, float] = {}
    option_counts: Counter[int] = Counter()
    position_counts: Counter[int] = Counter()
    n_unparseable = 0
    for item in instrument.items:
        agreements = []
        for pres in answers.get(item.number, ()):
            idx = pres.option_index(k)
            if idx is None:
                n_unparseable += 1
                continue
            option_counts[idx] += 1
            position_counts[pres.position] += 1  # type: ignore[index]
            agreements.append(k - idx)
        mean_agreement = _mean(agreements)
        if mean_agreement is not None:
            item_values[item.number] = (k + 1 - mean_agreement) if item.reverse else mean_agreement
    by_subscale: dict[str, list[float]] = {s: [] for s in instrument.subscales}
    for item in instrument.items:
        if item.number in item_values:
            by_subscale[item.subscale].append(item_values[item.number])
    subscales = {s: _mean(v) for s, v in by_subscale.items()}
    construct = {
        s: (v if instrument.construct_is_bias.get(s, True) else (k + 1 - v))
        for s, v in subscales.items()
        if v is not None and s in instrument.construct_is_bias
    }
    n_answers = sum(option_counts.values())
    bias = _mean(list(item_values.values()))
    max_opt = max(option_counts.values()) / n_answers if n_answers else 0.0
    max_pos = max(position_counts.values()) / n_answers if n_answers else 0.0
    return {
        "bias_score": bias,
        "bias_score_normalized": (bias - 1) / (k - 1) if bias is not None else None,
        "subscales": subscales,
        "construct_scores": construct,
        "item_values": item_values,
        "n_items": len(instrument.items),
        "n_answered_items": len(item_values),
        "n_answers": n_answers,
        "n_unparseable": n_unparseable,
        "option_shares": {
            instrument.options[i]: option_counts[i] / n_answers if n_answers else 0.0
            for i in range(k)
        },
        "max_option_share": max_opt,
        "max_position_share": max_pos,
        "degenerate": n_answers > 0 and max(max_opt, max_pos) > degenerate_threshold,
        "key_status": instrument.key_status,
    }
