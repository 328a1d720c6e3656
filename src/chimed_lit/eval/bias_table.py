"""The bias table of the paper's Figure 2: per model and answer mode, each scale's total score,
its subscale means, the answer-position control, the degenerate flag and the key's status.

A bias score alone can mislead: a model that always picks the first shown option scores the
midpoint, and one that answers one option by habit looks opinionated. So each scale's row
carries `max_position_share` (each item is asked in both option orders; near 1 means the
model answers by position, not content) and `degenerate` from `scales.score_answers`, and
`key_status` says whether the scoring key is the published one.

`results` is {model: {scale: {mode: score_answers(...)}}} (`run_scale(...)["metrics"]` per
scale), models and scales in the order they should appear.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chimed_lit.eval.report import markdown_cell
from chimed_lit.io.atomic import write_text

Scores = Mapping[str, Any]  # one `score_answers` result
Results = Mapping[str, Mapping[str, Mapping[str, Scores]]]  # model -> scale -> mode -> scores
CONTROLS = ("n_answered_items", "max_position_share", "degenerate", "key_status")


def scale_points(scores: Scores) -> int:
    """K, the number of answer options (scores run 1..K; the neutral point is (1 + K) / 2)."""
    return len(scores["option_shares"])


def scales_of(results: Results) -> dict[str, Scores]:
    """{scale: the first model's headline scores}: the scales in table order, with their shape."""
    out: dict[str, Scores] = {}
    for by_scale in results.values():
        for scale, by_mode in by_scale.items():
            if scale not in out and by_mode:
                out[scale] = next(iter(by_mode.values()))
    return out


def subscales_shown(scores: Scores) -> list[str]:
    """Subscales worth a column of their own: none when the only one is the total (MICA)."""
    names = list(scores.get("subscales", {}))
    return names if len(names) > 1 else []


def bias_columns(results: Results) -> list[str]:
    cols = ["model", "mode"]
    for scale, scores in scales_of(results).items():
        cols.append(f"{scale}/bias_score")
        cols += [f"{scale}/{s}" for s in subscales_shown(scores)]
        cols += [f"{scale}/{c}" for c in CONTROLS]
    return cols


def bias_rows(results: Results) -> tuple[list[str], list[list[Any]]]:
    """(columns, rows): a row per model and answer mode, headline mode first."""
    shapes = scales_of(results)
    columns = bias_columns(results)
    rows = []
    for model, by_scale in results.items():
        modes = list(dict.fromkeys(m for by_mode in by_scale.values() for m in by_mode))
        for mode in modes:
            row: list[Any] = [model, mode]
            for scale, shape in shapes.items():
                scores = by_scale.get(scale, {}).get(mode, {})
                row.append(scores.get("bias_score"))
                row += [scores.get("subscales", {}).get(s) for s in subscales_shown(shape)]
                row += [scores.get(c) for c in CONTROLS]
            rows.append(row)
    return columns, rows


def bias_markdown(results: Results, digits: int = 4) -> str:
    """The table, then what its numbers mean (ranges and neutral points included)."""
    columns, rows = bias_rows(results)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(markdown_cell(v, digits) for v in row) + " |" for row in rows]
    ranges = "; ".join(
        f"{scale} 1-{scale_points(s)}, neutral {(1 + scale_points(s)) / 2:g}"
        for scale, s in scales_of(results).items()
    )
    notes = [
        "",
        (
            f"- Scores are item means, higher = more bias ({ranges}); a subscale column is "
            "that subscale's mean in the same direction."
        ),
        (
            "- max_position_share: the largest share of answers at one shown position (each "
            "item is asked in both option orders); near 1 = answers by position, not content."
        ),
        (
            "- degenerate: one option or position took most answers (above the threshold); "
            "such a score says little about attitudes."
        ),
        "- key_status: whether the scoring key is the published one.",
    ]
    return "\n".join(lines + notes) + "\n"


def bias_csv(results: Results) -> str:
    columns, rows = bias_rows(results)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return buf.getvalue()


def write_bias_table(
    results: Results, out_dir: str | Path, name: str = "bias"
) -> tuple[Path, Path]:
    """`<out_dir>/<name>.md` and `<name>.csv`, each written atomically."""
    out = Path(out_dir)
    write_text(out / f"{name}.md", bias_markdown(results))
    write_text(out / f"{name}.csv", bias_csv(results))
    return out / f"{name}.md", out / f"{name}.csv"
