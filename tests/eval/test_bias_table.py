"""The Figure 2 table (`eval.bias_table`): a row per model and answer mode, each scale's total,
subscale means and controls, the same numbers in Markdown and CSV."""

from __future__ import annotations

import csv
import warnings

from chimed_lit.eval.bias_table import bias_markdown, bias_rows, write_bias_table
from chimed_lit.eval.keys_builtin import load_scale
from chimed_lit.eval.scales import Presentation, score_answers


def _scale(tmp_path, name: str, n: int):
    path = tmp_path / f"{name}.txt"
    path.write_text("\n".join(f"{name.upper()} item {i} (paraphrase)" for i in range(1, n + 1)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_scale(name, path)


def _first_position(inst, n_answered: int | None = None) -> dict:
    """Always the first shown option: a position habit (degenerate, scored at the midpoint)."""
    items = inst.items[:n_answered] if n_answered else inst.items
    answers = {it.number: [Presentation("natural", 0), Presentation("reversed", 0)] for it in items}
    return score_answers(inst, answers)


def _consistent(inst) -> dict:
    """Item i gets option i mod K in both orders: answers by content, spread over positions."""
    k = inst.n_options
    answers = {
        it.number: [Presentation("natural", i % k), Presentation("reversed", k - 1 - i % k)]
        for i, it in enumerate(inst.items)
    }
    return score_answers(inst, answers)


def test_rows_columns_and_files(tmp_path):
    cami, mica = _scale(tmp_path, "cami", 40), _scale(tmp_path, "mica", 16)
    results = {
        "sft": {
            "cami": {"logprob": _consistent(cami), "generate": _first_position(cami, 10)},
            "mica": {"logprob": _first_position(mica)},
        },
        "rlhf": {"cami": {"logprob": _first_position(cami)}},  # MICA not scored: empty cells
    }
    columns, rows = bias_rows(results)
    subs = [f"cami/{s}" for s in cami.subscales]
    controls = ["n_answered_items", "max_position_share", "degenerate", "key_status"]
    assert columns == [
        "model",
        "mode",
        "cami/bias_score",
        *subs,
        *[f"cami/{c}" for c in controls],
        "mica/bias_score",  # one subscale (the total): no column repeating it
        *[f"mica/{c}" for c in controls],
    ]
    assert [r[:2] for r in rows] == [["sft", "logprob"], ["sft", "generate"], ["rlhf", "logprob"]]
    row = dict(zip(columns, rows[0], strict=True))
    agree = results["sft"]["cami"]["logprob"]
    assert row["cami/bias_score"] == agree["bias_score"]
    assert [row[c] for c in subs] == list(agree["subscales"].values())
    assert row["cami/degenerate"] is False and row["cami/max_position_share"] == 0.2
    assert row["cami/key_status"] == cami.key_status
    habit = dict(zip(columns, rows[1], strict=True))
    assert habit["cami/degenerate"] is True and habit["cami/max_position_share"] == 1.0
    assert habit["cami/n_answered_items"] == 10 and habit["mica/bias_score"] is None
    assert dict(zip(columns, rows[0], strict=True))["mica/bias_score"] == 3.5  # midpoint of 1..6

    md_path, csv_path = write_bias_table(results, tmp_path / "out")
    read = list(csv.DictReader(csv_path.open(encoding="utf-8")))
    assert list(read[0]) == columns and len(read) == 3
    assert float(read[0]["cami/bias_score"]) == agree["bias_score"]
    assert read[2]["mica/bias_score"] == "" and read[1]["cami/degenerate"] == "True"
    md = md_path.read_text(encoding="utf-8")
    assert md == bias_markdown(results)
    lines = md.splitlines()
    assert lines[0] == "| " + " | ".join(columns) + " |" and len(lines[0].split("|")) == 2 + len(
        columns
    )
    assert lines[4].startswith("| rlhf | logprob | 3.0000 |") and "| - |" in lines[4]
    assert "cami 1-5, neutral 3; mica 1-6, neutral 3.5" in md
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["bias.csv", "bias.md"]
