"""The paper's Figure 2: attitude-scale scores of several models, one panel per scale.

CAMI answers run 1..5 and MICA 1..6, so one shared axis (or a normalised one) would hide
what a score means; each panel spans its own scale's range, bars rise from the floor (1),
and a dashed line marks the neutral point (the midpoint) so "more biased than neutral" reads
at a glance. A panel has a group for the total and, when the scale has several, one per
subscale; a bar per model, colours shared through one legend. Bars of degenerate answer
sets (one option or position took most answers) are hatched.

Labels are Chinese when an installed font draws every one of them, else English
(`fonts.font_with_glyphs`); a model or subscale name the chosen font cannot draw keeps the
part it can, or becomes "model N" / "subscale N". No label is ever drawn as boxes.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chimed_lit.io.atomic import write_bytes

from .bias_table import Results, Scores, scale_points, scales_of, subscales_shown
from .fonts import default_family, drawable_name, font_with_glyphs

LANGUAGES = ("auto", "zh", "en")

TEXTS = {
    "en": {
        "title": "Attitude scales by model ({mode} answers; higher = more bias)",
        "ylabel": "mean score (higher = more bias)",
        "neutral": "neutral {mid:g}",
        "total": "Total",
        "degenerate": "hatched: degenerate answers",
        "missing": "n/a",
    },
    "zh": {
        "title": "各模型的态度量表得分（{mode}；越高越偏见）",
        "ylabel": "平均得分（越高越偏见）",
        "neutral": "中性点 {mid:g}",
        "total": "总分",
        "degenerate": "斜线：答案退化",
        "missing": "无",
    },
}
SUBSCALES_ZH = {
    "total": "总分",
    "authoritarianism": "权威主义",
    "benevolence": "仁慈",
    "social_restrictiveness": "社会限制",
    "community_mental_health_ideology": "社区心理健康意识",
}


@dataclass
class BiasChart:
    """The figure and the label choices made for it (the font draws every label)."""

    figure: Any  # matplotlib.figure.Figure
    language: str  # "zh" or "en"
    family: str
    model_labels: dict[str, str] = field(default_factory=dict)


def english_name(name: str) -> str:
    """'social_restrictiveness' -> 'Social Restrictiveness'; other names unchanged."""
    if name.isascii() and name == name.lower():
        return " ".join(w.capitalize() for w in name.replace("-", "_").split("_") if w)
    return name


def _labels(
    results: Results, language: str
) -> tuple[str, str, dict[str, str], dict[str, str], dict[str, dict[str, str]]]:
    """(language, family, texts, {model: label}, {scale: {subscale: label}})."""
    if language not in LANGUAGES:
        raise ValueError(f"language={language!r}: expected one of {LANGUAGES}")
    subs = {scale: list(s["subscales"]) for scale, s in scales_of(results).items()}
    if language in ("auto", "zh"):
        zh = {sc: {s: SUBSCALES_ZH.get(s, s) for s in names} for sc, names in subs.items()}
        every = [*TEXTS["zh"].values(), *results, *subs]
        every += [label for names in zh.values() for label in names.values()]
        family = font_with_glyphs("".join(every) + "0123456789.")
        if family is not None:
            return "zh", family, TEXTS["zh"], {m: m for m in results}, zh
    family = default_family()
    models = _unique(
        {m: drawable_name(m, family, f"model {i}") for i, m in enumerate(results, 1)}, "model"
    )
    en = {
        sc: _unique(
            {
                s: drawable_name(english_name(s), family, f"subscale {i}")
                for i, s in enumerate(names, 1)
            },
            "subscale",
        )
        for sc, names in subs.items()
    }
    return "en", family, TEXTS["en"], models, en


def _unique(labels: dict[str, str], kind: str) -> dict[str, str]:
    """Labels that fell back to the same text get numbered names, so no two bars share one."""
    seen = list(labels.values())
    return {
        k: (lbl if seen.count(lbl) == 1 else f"{kind} {i}")
        for i, (k, lbl) in enumerate(labels.items(), 1)
    }


def _headline(by_mode: Mapping[str, Scores], mode: str | None) -> Scores | None:
    if not by_mode:
        return None
    return by_mode.get(mode) if mode is not None else next(iter(by_mode.values()))


def bias_chart(results: Results, mode: str | None = None, language: str = "auto") -> BiasChart:
    """Build the figure from {model: {scale: {mode: score_answers(...)}}} for `mode` (None: each
    result's first mode, the one the tables head with). `language`: auto (Chinese when a font
    draws it), zh (the same, English when no font can), en."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.text import Text

    lang, family, texts, model_labels, sub_labels = _labels(results, language)
    shapes = scales_of(results)
    if not shapes:
        raise ValueError("no scale results to plot")
    groups = {scale: ["total", *subscales_shown(s)] for scale, s in shapes.items()}
    n_models = max(1, len(results))
    widths = [len(g) * max(1.4, 0.35 * n_models) + 0.8 for g in groups.values()]
    fig = Figure(figsize=(max(6.0, sum(widths) + 1.0), 4.8), layout="constrained")
    axes = fig.subplots(1, len(shapes), squeeze=False, width_ratios=widths)[0]
    colors = [f"C{i % 10}" for i in range(n_models)]  # as _panel colours the bars
    first_mode = mode or next(
        (m for by_scale in results.values() for by_mode in by_scale.values() for m in by_mode), ""
    )
    any_degenerate = False
    for ax, (scale, shape) in zip(axes, shapes.items(), strict=True):
        bars = [_headline(by_scale.get(scale, {}), mode) for by_scale in results.values()]
        any_degenerate |= _panel(
            ax, scale, shape, groups[scale], bars, texts, sub_labels[scale], family
        )
    axes[0].set_ylabel(texts["ylabel"])
    handles: list[Any] = [Patch(color=c) for c in colors]
    legend = [model_labels[m] for m in results]
    if any_degenerate:
        handles.append(Patch(facecolor="white", edgecolor="0.3", hatch="//"))
        legend.append(texts["degenerate"])
    fig.legend(handles, legend, loc="outside lower center", ncol=min(len(legend), 4))
    fig.suptitle(texts["title"].format(mode=first_mode))
    for text in fig.findobj(Text):
        text.set_fontfamily(family)
    return BiasChart(fig, lang, family, model_labels)


def _panel(
    ax: Any,
    scale: str,
    shape: Scores,
    groups: list[str],
    per_model: list[Scores | None],
    texts: Mapping[str, str],
    sub_labels: Mapping[str, str],
    family: str,
) -> bool:
    """One scale's panel: a group per total/subscale, a bar per model rising from 1, the neutral
    line; True when a bar is of a degenerate answer set."""
    k = scale_points(shape)
    width = 0.8 / max(1, len(per_model))
    degenerate_seen = False
    for i, scores in enumerate(per_model):
        for j, group in enumerate(groups):
            x = j + (i - (len(per_model) - 1) / 2) * width
            value = None
            if scores is not None:
                subs = scores.get("subscales", {})
                value = scores.get("bias_score") if group == "total" else subs.get(group)
            if value is None:
                ax.text(x, 1.05, texts["missing"], ha="center", fontsize=7, rotation=90)
                continue
            degenerate = bool(scores and scores.get("degenerate"))
            degenerate_seen |= degenerate
            bars = ax.bar(
                x,
                value - 1,
                bottom=1,
                width=width,
                color=f"C{i % 10}",
                hatch="//" if degenerate else None,
                edgecolor="white" if degenerate else None,
            )
            ax.bar_label(bars, labels=[f"{value:.2f}"], fontsize=7, padding=1)
    mid = (1 + k) / 2
    ax.axhline(mid, color="0.35", linestyle="--", linewidth=1)
    neutral = ax.secondary_yaxis("right")  # labelled beside the axis, clear of the bars
    neutral.set_yticks([mid], labels=[texts["neutral"].format(mid=mid)], fontsize=8)
    ax.set_ylim(1, k + 0.3)  # the scale's range, and room for the value labels
    ax.set_yticks(range(1, k + 1))
    names = [texts["total"] if g == "total" else sub_labels[g] for g in groups]
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([textwrap.fill(n, 13, break_long_words=False) for n in names], fontsize=8)
    title = scale.upper() if scale.isascii() else scale
    ax.set_title(f"{drawable_name(title, family, 'scale')} (1-{k})")
    return degenerate_seen


def save_png(chart: BiasChart, path: str | Path, dpi: int = 150) -> Path:
    """Render to PNG in memory, then write it atomically (a crash leaves no half image)."""
    buf = io.BytesIO()
    chart.figure.savefig(buf, format="png", dpi=dpi)
    write_bytes(path, buf.getvalue())
    return Path(path)


def plot_bias(
    results: Results, path: str | Path, mode: str | None = None, language: str = "auto"
) -> BiasChart:
    """`bias_chart` written to `path` (PNG)."""
    chart = bias_chart(results, mode=mode, language=language)
    save_png(chart, path)
    return chart
