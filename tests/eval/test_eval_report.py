"""Result files: atomic JSON + markdown, comparison tables, the scale bar chart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chimed_lit.eval.report import (
    comparison_table,
    flatten_metrics,
    load_task_metrics,
    metrics_markdown,
    plot_scale_scores,
    scale_plot_rows,
    write_comparison,
    write_task_result,
)

RESULT = {
    "task": "mcq",
    "metrics": {
        "letter": {"accuracy": 0.5, "n": 4, "per_subject": {"anatomy": 1.0}},
        "generate": {"accuracy": 0.25, "n": 4, "per_subject": {}},
    },
    "predictions": [{"gold": "A", "letter": "A", "answers": frozenset({"A"})}],
}


def test_write_task_result(tmp_path: Path) -> None:
    path = write_task_result(tmp_path / "eval", "mcq", RESULT)
    assert path == tmp_path / "eval" / "mcq.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["metrics"]["letter"]["per_subject"] == {"anatomy": 1.0}
    assert data["predictions"][0]["answers"] == ["A"]
    md = (tmp_path / "eval" / "mcq.md").read_text(encoding="utf-8")
    assert "| letter/accuracy | 0.5000 |" in md and "per_subject" not in md
    assert load_task_metrics(path)["generate/accuracy"] == 0.25
    scale_path = write_task_result(tmp_path, "scale:cami", {"metrics": {}, "predictions": []})
    assert scale_path.name == "scale_cami.json"


def test_failed_write_keeps_previous_file(tmp_path: Path) -> None:
    path = write_task_result(tmp_path, "mcq", RESULT)
    before = path.read_text(encoding="utf-8")
    bad = {"metrics": {}, "predictions": [object()]}
    with pytest.raises(TypeError):
        write_task_result(tmp_path, "mcq", bad)
    assert path.read_text(encoding="utf-8") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mcq.json", "mcq.md"]  # no temp left


def test_flatten_and_markdown() -> None:
    flat = flatten_metrics(RESULT["metrics"])
    assert flat == {
        "letter/accuracy": 0.5,
        "letter/n": 4,
        "generate/accuracy": 0.25,
        "generate/n": 4,
    }
    assert "letter/per_subject/anatomy" in flatten_metrics(RESULT["metrics"], keep_details=True)
    assert metrics_markdown({"a": None, "b": True}).splitlines()[2:] == [
        "| a | - |",
        "| b | true |",
    ]


def test_comparison_table(tmp_path: Path) -> None:
    rows = {
        "pretrain": {"letter": {"accuracy": 0.25}, "ner": {"f1": 0.1}},
        "sft": {"letter": {"accuracy": 0.5}},
        "rlhf": {"letter": {"accuracy": 0.625}, "ner": {"f1": 0.3}},
    }
    md, csv_text = comparison_table(rows, scale=100, digits=1, row_header="stage")
    assert md.splitlines() == [
        "| stage | letter/accuracy | ner/f1 |",
        "|---|---|---|",
        "| pretrain | 25.0 | 10.0 |",
        "| sft | 50.0 | - |",
        "| rlhf | 62.5 | 30.0 |",
    ]
    assert csv_text.splitlines() == [
        "stage,letter/accuracy,ner/f1",
        "pretrain,25.0,10.0",
        "sft,50.0,",
        "rlhf,62.5,30.0",
    ]
    md_path, csv_path = write_comparison(rows, tmp_path, "table2", columns=["ner/f1"])
    assert md_path.read_text(encoding="utf-8").splitlines()[0] == "| model | ner/f1 |"
    assert csv_path.read_text(encoding="utf-8").splitlines()[2] == "sft,"


def test_scale_bar_chart(tmp_path: Path) -> None:
    fake = {"metrics": {"logprob": {"bias_score_normalized": 0.4, "subscales": {"甲": 2.0}}}}
    rows = scale_plot_rows(
        {"sft": {"scale:cami": fake}, "rlhf": {"scale:cami": fake}}, subscales=True
    )
    assert rows == {"sft": {"cami": 0.4, "cami/甲": 2.0}, "rlhf": {"cami": 0.4, "cami/甲": 2.0}}
    path = plot_scale_scores(
        {"pretrain": {"CAMI": 0.5, "MICA": 0.6}, "rlhf": {"CAMI": 0.3, "MICA": None}},
        tmp_path / "fig" / "bias.png",
    )
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def test_the_training_chart_draws_chinese_labels_as_text_or_falls_back_never_boxes(tmp_path):
    """On a machine without a CJK font (this one), '能力偏见' would be drawn as four boxes:
    each label keeps what the font draws, and no glyph goes missing when the PNG is written."""
    import warnings

    import matplotlib.pyplot as plt

    from chimed_lit.eval.fonts import font_with_glyphs
    from chimed_lit.eval.report import scale_figure

    scores = {"step 0": {"demo": 3.0, "demo/能力偏见": 2.5}, "step 10": {"demo": 3.2}}
    fig = scale_figure(scores, title="偏见 by step")
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    if font_with_glyphs("能力偏见偏见") is None:
        assert ticks == ["demo", "demo/subscale 2"]
        assert fig.axes[0].get_title() == "by step"
    else:
        assert ticks == ["demo", "demo/能力偏见"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.savefig(tmp_path / "bias.png")
    plt.close(fig)
    assert not [w for w in caught if "Glyph" in str(w.message)]
