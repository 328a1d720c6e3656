"""A Hydra callback that writes one summary table for a multirun sweep."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from chimed_lit.io.atomic import write_json, write_text


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job: its number, the overrides that vary across jobs, stage, final
    validation loss (and the loss before training)."""
    rows = []
    for job in sorted(
        (p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()),
        key=lambda p: int(p.name),
    ):
        overrides_file = job / ".hydra" / "overrides.yaml"
        overrides = (
            OmegaConf.to_container(OmegaConf.load(overrides_file))
            if overrides_file.is_file()
            else []
        )
        summaries = sorted(job.glob("*/summary.json"), key=lambda p: p.stat().st_mtime)
        row: dict[str, Any] = {
            "job": int(job.name),
            "overrides": " ".join(overrides),
            "output_dir": str(job),
        }
        if summaries:
            s = json.loads(summaries[-1].read_text())
            stage = s["stage"]
            row.update(
                stage=stage,
                steps=s.get("global_step"),
                val_loss=s["final"].get(f"{stage}/val_loss"),
                initial_val_loss=s["initial"].get(f"{stage}/val_loss"),
            )
        else:
            row.update(stage=None, steps=None, val_loss=None, initial_val_loss=None)
        rows.append(row)
    per_job = [r["overrides"].split(" ") for r in rows]
    common = set.intersection(*(set(o) for o in per_job)) if per_job else set()
    for r, o in zip(rows, per_job, strict=True):
        r["overrides"] = " ".join(x for x in o if x not in common) or r["overrides"]
    return rows


def write_summary(sweep_dir: Path) -> list[dict[str, Any]]:
    rows = collect(sweep_dir)
    write_json(sweep_dir / "sweep_summary.json", rows)
    buf = io.StringIO()
    fields = ["job", "overrides", "stage", "steps", "initial_val_loss", "val_loss", "output_dir"]
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text(sweep_dir / "sweep_summary.csv", buf.getvalue())
    return rows


class SweepSummary(Callback):
    """`on_multirun_end`: `sweep_summary.{json,csv}` in the sweep dir, printed as a table."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        rows = write_summary(sweep_dir)
        print(f"\nsweep summary ({sweep_dir / 'sweep_summary.csv'}):")
        for r in rows:
            loss = "-" if r["val_loss"] is None else f"{r['val_loss']:.4f}"
            print(f"  job {r['job']:>3}  val_loss {loss:>8}  {r['overrides']}")
