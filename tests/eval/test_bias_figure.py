"""The Figure 2 chart (`eval.bias_figure`): a panel per scale spanning its own range, the neutral
point marked, a bar per model at its score, and labels that never render as boxes."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pytest

from chimed_lit.eval.bias_figure import bias_chart, english_name, plot_bias
from chimed_lit.eval.fonts import drawable_name, font_with_glyphs, has_glyphs
from chimed_lit.eval.instruments import Instrument, demo_instrument_path, load_instrument
from chimed_lit.eval.keys_builtin import load_scale
from chimed_lit.eval.scales import Presentation, score_answers


def _items(tmp_path: Path, name: str, n: int) -> Path:
    path = tmp_path / f"{name}_items.txt"  # placeholders: the questionnaires are not shipped
    path.write_text("\n".join(f"{name.upper()} item {i} (paraphrase)" for i in range(1, n + 1)))
    return path


def scored(inst: Instrument, natural: list[int], reversed_: list[int]) -> dict:
    """score_answers for answers at the given shown positions, item by item (cycled)."""
    answers = {
        it.number: [
            Presentation("natural", natural[i % len(natural)]),
            Presentation("reversed", reversed_[i % len(reversed_)]),
        ]
        for i, it in enumerate(inst.items)
    }
    return score_answers(inst, answers)


@pytest.fixture
def scales(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a key-status note, not under test here
        return load_scale("cami", _items(tmp_path, "cami", 40)), load_scale(
            "mica", _items(tmp_path, "mica", 16)
        )


def most_biased(inst: Instrument) -> dict:
    """score_answers of a model that takes the stigmatising side of every item (score K)."""
    k = inst.n_options
    answers = {
        it.number: [
            Presentation("natural", k - 1 if it.reverse else 0),
            Presentation("reversed", 0 if it.reverse else k - 1),
        ]
        for it in inst.items
    }
    return score_answers(inst, answers)


def _results(cami: Instrument, mica: Instrument, names: tuple[str, str]) -> dict:
    a, b = names
    return {
        a: {"cami": {"logprob": most_biased(cami)}, "mica": {"logprob": most_biased(mica)}},
        b: {  # a mix of positions
            "cami": {"logprob": scored(cami, [1, 3, 0, 2], [2, 0, 4, 1])},
            "mica": {"logprob": scored(mica, [5, 1, 2], [0, 3, 4])},
        },
    }


def _main_axes(fig):
    """The panels (the neutral-point axes beside each are its children)."""
    children = {id(c) for ax in fig.axes for c in ax.child_axes}
    return [ax for ax in fig.axes if id(ax) not in children]


def _tops(ax) -> list[float]:
    return [round(p.get_y() + p.get_height(), 9) for p in ax.patches]


def test_two_panels_each_spanning_its_scale_with_the_neutral_point(scales, tmp_path):
    cami, mica = scales
    results = _results(cami, mica, ("sft", "rlhf"))
    chart = plot_bias(results, tmp_path / "out" / "bias.png", language="en")
    assert (tmp_path / "out" / "bias.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["bias.png"]  # no temporary left
    cami_ax, mica_ax = _main_axes(chart.figure)
    for ax, k in ((cami_ax, 5), (mica_ax, 6)):
        low, high = ax.get_ylim()
        assert low <= 1 and k <= high < k + 1  # each panel its own range, not a shared one
        assert [t.get_text() for t in ax.get_yticklabels()] == [str(v) for v in range(1, k + 1)]
        mid = (1 + k) / 2
        assert any(list(line.get_ydata()) == [mid, mid] for line in ax.get_lines())
        (neutral,) = ax.child_axes
        assert [t.get_text() for t in neutral.get_yticklabels()] == [f"neutral {mid:g}"]
        assert all(p.get_y() == 1 for p in ax.patches)  # bars rise from the scale's floor
    assert cami_ax.get_title() == "CAMI (1-5)" and mica_ax.get_title() == "MICA (1-6)"
    groups = [t.get_text() for t in cami_ax.get_xticklabels()]
    assert groups[0] == "Total" and len(groups) == 1 + len(cami.subscales)
    assert [t.get_text() for t in mica_ax.get_xticklabels()] == ["Total"]  # one total, no repeat
    # one bar per model and group, at the scores score_answers gave
    scores = {m: results[m]["cami"]["logprob"] for m in ("sft", "rlhf")}
    assert scores["sft"]["bias_score"] == 5 != scores["rlhf"]["bias_score"]  # a swap would show
    tops = _tops(cami_ax)
    assert len(tops) == 2 * (1 + len(cami.subscales))
    for m in scores.values():
        for v in (m["bias_score"], *m["subscales"].values()):
            assert round(v, 9) in tops
    assert sorted(_tops(mica_ax)) == sorted(
        round(results[m]["mica"]["logprob"]["bias_score"], 9) for m in ("sft", "rlhf")
    )
    legend = [t.get_text() for t in chart.figure.legends[0].get_texts()]
    assert legend[:2] == ["sft", "rlhf"]


def test_cjk_labels_fall_back_to_drawable_text_without_glyph_warnings(scales, tmp_path):
    cami, _ = scales
    demo = load_instrument(demo_instrument_path())  # subscales 能力偏见, 照护排斥
    results = {
        "医疗模型甲": {"cami": {"logprob": scored(cami, [0], [4])}},
        "ChiMed-GPT 中文": {
            "cami": {"logprob": scored(cami, [1], [3])},
            "demo_scale": {"logprob": scored(demo, [0], [4])},
        },
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chart = plot_bias(results, tmp_path / "bias.png")
    glyphs = [str(w.message) for w in caught if "Glyph" in str(w.message)]
    assert glyphs == []
    legend = [t.get_text() for t in chart.figure.legends[0].get_texts()]
    demo_ax = _main_axes(chart.figure)[1]
    ticks = [t.get_text() for t in demo_ax.get_xticklabels()]
    if font_with_glyphs("医疗模型甲能力偏见") is None:  # this machine: no CJK font installed
        assert chart.language == "en"
        assert legend == ["model 1", "ChiMed-GPT", "hatched: degenerate answers"]
        assert ticks == ["Total", "subscale 1", "subscale 2"]
        assert demo_ax.get_title() == "DEMO_SCALE (1-5)"
    else:  # a CJK font: the Chinese labels, drawn in it
        assert chart.language == "zh" and has_glyphs(chart.family, "医疗模型甲")
        assert legend[:2] == ["医疗模型甲", "ChiMed-GPT 中文"]
        assert ticks == ["总分", "能力偏见", "照护排斥"]


def test_without_the_fallback_the_same_label_would_be_boxes():
    """The check above can fail: matplotlib does warn for a CJK label without a CJK font."""
    from matplotlib.figure import Figure

    if font_with_glyphs("医疗模型甲") is not None:
        pytest.skip("a CJK font is installed here")
    fig = Figure()
    fig.subplots().set_title("医疗模型甲")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.savefig(io.BytesIO(), format="png")
    assert any("Glyph" in str(w.message) and "missing" in str(w.message) for w in caught)


def test_font_detection_and_fallback_names():
    greek = font_with_glyphs("ψυχή")  # DejaVu draws Greek
    assert greek is not None and has_glyphs(greek, "ψυχή")
    assert not has_glyphs("Last Resort High-Efficiency", "权")  # placeholder boxes only
    if font_with_glyphs("权威主义") is None:
        assert not has_glyphs(greek, "权威主义")
        assert drawable_name("医疗-7B", greek, "model 3") == "7B"
        assert drawable_name("医疗模型", greek, "model 3") == "model 3"
    assert drawable_name("ChiMed-GPT", greek, "model 1") == "ChiMed-GPT"
    assert english_name("community_mental_health_ideology") == "Community Mental Health Ideology"
    assert english_name("能力偏见") == "能力偏见"


def test_bad_language_is_refused(scales):
    cami, mica = scales
    with pytest.raises(ValueError, match="language='fr'"):
        bias_chart(_results(cami, mica, ("a", "b")), language="fr")
