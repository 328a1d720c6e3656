"""The reward model's held-out accuracy against training step, drawn after every validation.

Like Figure 3 of the ChiMed-GPT paper: a curve that flattens early says more pairs will not
help; one still rising says train longer. The series is part of the callback's state, so a
resumed run continues the same curve.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import lightning as L


class RewardAccuracyCallback(L.Callback):
    """Knobs: `dirpath` (where `reward_accuracy.png` goes; None: the Trainer's log dir, else its
    `default_root_dir`), `metric` (None: `<module.stage>/accuracy`)."""

    FILENAME = "reward_accuracy.png"

    def __init__(self, dirpath: str | os.PathLike | None = None, metric: str | None = None):
        self.dirpath = dirpath
        self.metric = metric
        self.series: list[tuple[int, float]] = []

    def _key(self, pl_module: L.LightningModule) -> str:
        return self.metric or f"{getattr(pl_module, 'stage', 'reward')}/accuracy"

    def path(self, trainer: L.Trainer) -> Path:
        root = self.dirpath or trainer.log_dir or trainer.default_root_dir
        return Path(root) / self.FILENAME

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self._key(pl_module))
        if value is None or not math.isfinite(float(value)):
            return
        step = int(trainer.global_step)
        self.series = [p for p in self.series if p[0] != step]  # a revalidated step replaces
        self.series.append((step, float(value)))
        self.series.sort()
        if trainer.is_global_zero:
            self.plot(self.path(trainer))

    def plot(self, path: Path) -> None:
        """Write the curve as PNG atomically (temporary file in the same folder, then rename)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(5, 3.5), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        steps, accs = zip(*self.series, strict=True) if self.series else ((), ())
        ax.plot(steps, accs, marker="o")
        ax.set_xlabel("training step")
        ax.set_ylabel("validation pairwise accuracy")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(buf.getvalue())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def state_dict(self) -> dict[str, Any]:
        return {"series": [list(p) for p in self.series]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.series = [(int(s), float(a)) for s, a in state_dict.get("series", [])]
