"""CSV metrics that survive a resume (`logger=csv`).

Lightning's `CSVLogger` deletes the `metrics.csv` it finds in its folder and rewrites the file
whenever a new column appears. `ResumableCSVLogger` keeps it: a resumed run appends its rows,
a new column rewrites the file with every row kept, and `drop_steps_after(step)` drops the rows
a killed run logged past the checkpoint it is resumed from (they are logged again). Public
Lightning API only (`CSVLogger.experiment`, `ExperimentWriter.save`).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from lightning.pytorch.core.saving import save_hparams_to_yaml
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from chimed_lit.io.atomic import write_text


def _read(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    if not path.is_file():
        return [], []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _write(path: Path, header: list[str], rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header)
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


class AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, appending to the `metrics.csv` it finds."""

    def __init__(self, log_dir: str) -> None:
        path = Path(log_dir) / self.NAME_METRICS_FILE
        aside = path.with_name(f".{path.name}.keep")
        if path.is_file():  # the parent's __init__ deletes it
            os.replace(path, aside)
        try:
            super().__init__(log_dir)
        finally:
            if aside.is_file():
                os.replace(aside, path)

    def save(self) -> None:
        save_hparams_to_yaml(os.path.join(self.log_dir, self.NAME_HPARAMS_FILE), self.hparams)
        if not self.metrics:
            return
        path = Path(self.metrics_file_path)
        header, _ = _read(path)
        keys = sorted(set(header).union(*self.metrics))
        if header and keys != header:  # a new column: the file again, every row kept
            _write(path, keys, _read(path)[1])
        with path.open("a" if header else "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            if not header:
                writer.writeheader()
            writer.writerows(self.metrics)
        self.metrics = []


class ResumableCSVLogger(CSVLogger):
    """`CSVLogger` whose `metrics.csv` is appended to across resumes."""

    writer: AppendingWriter | None = None

    @property
    @rank_zero_experiment
    def experiment(self) -> AppendingWriter:
        if self.writer is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self.writer = AppendingWriter(log_dir=self.log_dir)
        return self.writer

    def start_fresh(self) -> None:
        """Forget an earlier run's rows: a stage trained from scratch in a folder that holds
        another run's `metrics.csv` (a changed config, a run without `resume=true`) logs into
        an empty file, as Lightning's own CSVLogger would."""
        (Path(self.log_dir) / ExperimentWriter.NAME_METRICS_FILE).unlink(missing_ok=True)

    def drop_steps_after(self, step: int) -> int:
        """Drop the rows logged past `step`: what a killed run logged after the checkpoint a
        resume starts from (saved at global step `step`), which the resumed run logs again.
        Rows at `step` itself stay: the final validation of a finished run is logged there, and
        so is the first step after the checkpoint, which the resumed run logs again (a reader
        taking the last row of each step reads the resumed run's). Returns how many went."""
        path = Path(self.log_dir) / ExperimentWriter.NAME_METRICS_FILE
        header, rows = _read(path)
        kept = [r for r in rows if not r.get("step") or int(float(r["step"])) <= step]
        if len(kept) != len(rows):
            _write(path, header, kept)
        return len(rows) - len(kept)
