"""`DriftAlarm`: how far an attitude scale's score has moved since the stage's start.

The score compared is `bias_score_normalized` (0..1), so one threshold suits scales with
different answer counts. The baseline is the first scoring that produced a score; the
warning is printed once per fit, since a model that drifted usually stays drifted and a
warning every scoring would bury the rest of the log.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from chimed_lit.io.errors import ConfigError

log = logging.getLogger("chimed_lit")


class DriftAlarm:
    """`threshold`: a rise of the normalized score above which the alarm fires (None = never;
    drift is still logged)."""

    def __init__(self, threshold: float | None) -> None:
        if threshold is not None and not math.isfinite(threshold):
            raise ConfigError(f"BiasScaleCallback drift_alarm={threshold}: expected a number")
        self.threshold = threshold
        self.baseline: dict[str, Any] | None = None  # {"step": int, "normalized": {mode: x}}
        self.warned = False

    def reset(self) -> None:
        """A new fit: no baseline (a checkpoint may restore one) and no warning yet."""
        self.baseline, self.warned = None, False

    def update(
        self,
        step: int,
        metrics: Mapping[str, Mapping[str, Any]],
        modes: Sequence[str],
        scale: str,
        warn: bool,
    ) -> dict[str, float]:
        """Scalars for this scoring: `bias/drift` (first mode; others `bias/<mode>/drift`) and
        `bias/drift_alarm`; the first scoring with a score becomes the baseline and logs
        nothing. `warn`: this rank prints (rank zero)."""
        now = {mode: metrics[mode].get("bias_score_normalized") for mode in modes}
        if self.baseline is None:
            if now[modes[0]] is not None:
                self.baseline = {"step": step, "normalized": now}
            return {}
        out: dict[str, float] = {}
        for i, mode in enumerate(modes):
            start = self.baseline["normalized"].get(mode)
            if start is not None and now[mode] is not None:
                out["bias/drift" if i == 0 else f"bias/{mode}/drift"] = now[mode] - start
        if self.threshold is None or "bias/drift" not in out:
            return out
        fired = out["bias/drift"] > self.threshold
        out["bias/drift_alarm"] = float(fired)
        if fired and not self.warned:
            self.warned = True
            if warn:
                start, first = self.baseline["normalized"][modes[0]], metrics[modes[0]]
                self._warn(scale, self.baseline["step"], start, step, now[modes[0]], first)
        return out

    def _warn(
        self, scale: str, start_step: int, start: float, step: int, now: float, metrics: Any
    ) -> None:
        habit = (
            "; the answers are degenerate (one option or position dominates), so this may be "
            "an answering habit rather than an attitude"
            if metrics.get("degenerate")
            else ""
        )
        log.warning(
            "bias drift alarm: %s bias_score_normalized went from %.3f at step %d to %.3f at "
            "step %d (%+.3f, above drift_alarm=%g)%s. Logged as bias/drift_alarm; this warning "
            "is printed once per fit.",
            scale,
            start,
            start_step,
            now,
            step,
            now - start,
            self.threshold,
            habit,
        )
