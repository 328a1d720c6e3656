"""Writing evaluation results: per-task JSON + markdown, comparison tables, scale bar chart.

`write_task_result` is atomic (temp file in the same folder, then `os.replace`), so a crash
mid-write never leaves a truncated `<task>.json` where a finished one was. Nested metrics are
flattened with "/" (e.g. `letter/accuracy`) for tables; per-subject, per-type and per-item
breakdowns stay in the JSON only unless asked for.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chimed_lit.io.atomic import write_text

_DETAIL_KEYS = {"per_type", "per_subject", "item_values", "option_shares"}


def flatten_metrics(
    metrics: Mapping[str, Any], prefix: str = "", keep_details: bool = False
) -> dict[str, Any]:
    """{"letter": {"accuracy": 0.5}} -> {"letter/accuracy": 0.5}; scalars only."""
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            if key in _DETAIL_KEYS and not keep_details:
                continue
            flat.update(flatten_metrics(value, f"{name}/", keep_details))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            flat[name] = value
    return flat


def markdown_cell(value: Any, digits: int) -> str:
    """One table cell: `-` for missing, lower-case booleans, floats to `digits`, `|` escaped."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value).replace("|", "\\|")


def metrics_markdown(metrics: Mapping[str, Any], digits: int = 4) -> str:
    """Two-column markdown table of the flattened metrics."""
    rows = ["| metric | value |", "|---|---|"]
    rows += [f"| {k} | {markdown_cell(v, digits)} |" for k, v in flatten_metrics(metrics).items()]
    return "\n".join(rows) + "\n"


def write_task_result(out_dir: str | Path, task: str, result: Mapping[str, Any]) -> Path:
    """`<out_dir>/<task>.json` (metrics + predictions) and `<task>.md`; returns the JSON path.
    A task name like "scale:cami" becomes the file stem "scale_cami"."""
    stem = task.replace(":", "_").replace("/", "_")
    out = Path(out_dir)
    payload = {"task": task, **{k: v for k, v in result.items() if k != "task"}}
    json_path = out / f"{stem}.json"
    write_text(json_path, json.dumps(payload, ensure_ascii=False, indent=2, default=_jsonable))
    md = f"# {task}\n\n" + metrics_markdown(result.get("metrics", {}))
    write_text(out / f"{stem}.md", md)
    return json_path


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def load_task_metrics(path: str | Path) -> dict[str, Any]:
    """Flattened metrics of a `<task>.json` written by `write_task_result`."""
    return flatten_metrics(json.loads(Path(path).read_text(encoding="utf-8"))["metrics"])


def comparison_table(
    rows: Mapping[str, Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    scale: float = 1.0,
    digits: int = 2,
    row_header: str = "model",
) -> tuple[str, str]:
    """(markdown, csv) of one table as in the paper: a row per model or stage (pretrain, sft,
    rlhf...), a column per metric. `scale=100` prints percentages; missing cells are "-"."""
    flat = {name: flatten_metrics(m) for name, m in rows.items()}
    if columns is None:
        columns = list(dict.fromkeys(c for m in flat.values() for c in m))

    def value(m: Mapping[str, Any], c: str) -> Any:
        v = m.get(c)
        return v * scale if isinstance(v, (int, float)) and not isinstance(v, bool) else v

    lines = [
        "| " + " | ".join([row_header, *columns]) + " |",
        "|" + "---|" * (len(columns) + 1),
    ]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([row_header, *columns])
    for name, m in flat.items():
        cells = [markdown_cell(value(m, c), digits) for c in columns]
        lines.append("| " + " | ".join([name, *cells]) + " |")
        writer.writerow([name, *[("" if value(m, c) is None else value(m, c)) for c in columns]])
    return "\n".join(lines) + "\n", buf.getvalue()


def write_comparison(
    rows: Mapping[str, Mapping[str, Any]], out_dir: str | Path, name: str, **kwargs: Any
) -> tuple[Path, Path]:
    """Write `<name>.md` and `<name>.csv` from `comparison_table(rows, **kwargs)`."""
    md, csv_text = comparison_table(rows, **kwargs)
    out = Path(out_dir)
    write_text(out / f"{name}.md", md)
    write_text(out / f"{name}.csv", csv_text)
    return out / f"{name}.md", out / f"{name}.csv"


def scale_figure(
    scores: Mapping[str, Mapping[str, float | None]],
    title: str = "Bias scores (higher = more bias)",
    ylabel: str = "score",
) -> Any:
    """Grouped bar chart: one group per scale/subscale label, one bar per checkpoint.

    `scores` is {checkpoint: {label: value}} (e.g. {"sft": {"CAMI": 2.1, "MICA": 2.8}}).
    Missing values leave a gap. Labels an installed font cannot draw (Chinese subscale names on
    a server without a CJK font) keep what it can draw, each `/`-part on its own ('cami/能力'
    -> 'cami/subscale 2'), never boxes. Drawn with the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from chimed_lit.eval.fonts import default_family, drawable_name, font_with_glyphs

    checkpoints = list(scores)
    labels = list(dict.fromkeys(lbl for s in scores.values() for lbl in s))
    family = font_with_glyphs("".join([*checkpoints, *labels, title, ylabel]))
    shown = family or default_family()

    def drawn(text: str, fallback: str) -> str:
        if family:
            return text
        return "/".join(drawable_name(part, shown, fallback) for part in text.split("/"))

    width = 0.8 / max(1, len(checkpoints))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(labels) + 2), 3.5))
    for i, ckpt in enumerate(checkpoints):
        xs = [j + (i - (len(checkpoints) - 1) / 2) * width for j in range(len(labels))]
        ys = [scores[ckpt].get(lbl) for lbl in labels]
        bars = [y if y is not None else 0.0 for y in ys]
        ax.bar(xs, bars, width=width, label=drawn(ckpt, f"checkpoint {i + 1}"))
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(
        [drawn(lbl, f"subscale {j + 1}") for j, lbl in enumerate(labels)],
        rotation=20,
        ha="right",
        fontfamily=shown,
    )
    ax.set_ylabel(drawn(ylabel, "score"), fontfamily=shown)
    ax.set_title(drawn(title, "scores"), fontfamily=shown)
    ax.legend(prop={"family": shown, "size": "small"})
    fig.tight_layout()
    return fig


def plot_scale_scores(
    scores: Mapping[str, Mapping[str, float | None]],
    path: str | Path,
    title: str = "Bias scores (higher = more bias)",
    ylabel: str = "score",
) -> Path:
    """`scale_figure` written to `path` as PNG (the shape of the paper's Figure 2)."""
    import matplotlib.pyplot as plt

    fig = scale_figure(scores, title, ylabel)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def scale_plot_rows(
    results: Mapping[str, Mapping[str, Any]],
    mode: str = "logprob",
    key: str = "bias_score_normalized",
    subscales: bool = False,
) -> dict[str, dict[str, float | None]]:
    """{checkpoint: {task: run_scale result}} -> rows for `plot_scale_scores`.

    Uses the normalised bias score (0..1) by default so scales with different numbers of
    options (CAMI 5, MICA 6) share one axis; `subscales=True` adds "<scale>/<subscale>" bars
    (raw 1..K means)."""
    rows: dict[str, dict[str, float | None]] = {}
    for ckpt, by_task in results.items():
        row: dict[str, float | None] = {}
        for task, result in by_task.items():
            label = task.split(":", 1)[-1]
            scored = result["metrics"][mode]
            row[label] = scored.get(key)
            if subscales:
                for sub, value in scored.get("subscales", {}).items():
                    row[f"{label}/{sub}"] = value
        rows[ckpt] = row
    return rows
