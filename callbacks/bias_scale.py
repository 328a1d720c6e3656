"""`BiasScaleCallback`: score an attitude scale with the model being trained (SFT, RLHF).

When training starts (the baseline), every `every_n_steps` optimizer steps and when training
ends, the scale is answered by the current model (eval mode, no grad, train mode restored) and
logged to every logger as `bias/bias_score`, `bias/bias_score_normalized`, `bias/degenerate`
and `bias/subscale/<name>` (first mode; other modes as `bias/<mode>/...`), plus a W&B table
when a `WandbLogger` is attached. The scale comes from `load_scale`, so CAMI and MICA have the
same published keys and subscales as in `chimed-lit eval`. A bar chart comparing the scored
steps is rewritten each time to `<dirpath>/bias_scale.png`.

Every scoring after the baseline also logs `bias/drift` (normalized score now minus at the
stage's start) and, with `drift_alarm` set, `bias/drift_alarm` (1 when the rise exceeds it)
with one warning per fit naming the scale, both scores and the step (see `bias_drift`): RLHF
can move a model's attitudes without any loss showing it. The baseline is checkpointed, so a
resumed stage still compares with its start.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from chimed_lit.io.errors import ConfigError, DataError

from .bias_drift import DriftAlarm


def find_tokenizer(callback_tokenizer: Any, trainer: L.Trainer, name: str) -> Any:
    """The tokenizer given to the callback, else `trainer.datamodule.tokenizer`."""
    tok = callback_tokenizer
    if tok is None:
        tok = getattr(getattr(trainer, "datamodule", None), "tokenizer", None)
    if tok is None:
        raise ConfigError(
            f"{name} needs a tokenizer: pass tokenizer= or use a DataModule with a .tokenizer"
        )
    return tok


def log_scalars(trainer: L.Trainer, metrics: dict[str, float]) -> None:
    """Log to every logger at the current step (works in any hook, unlike `pl_module.log`)."""
    for logger in trainer.loggers:
        logger.log_metrics(metrics, step=trainer.global_step)


class BiasScaleCallback(L.Callback):
    """Knobs: `instrument` (demo, cami, mica or an instrument YAML), `items_file` (CAMI/MICA
    item texts), `every_n_steps` (0 = only at the end), `dirpath` (None = the trainer's
    `default_root_dir`), `modes` (logprob and/or generate), `template` (chimed, ziya,
    tokenizer), `limit` (first N items), `batch_size`, `tokenizer` (None = the DataModule's),
    `drift_alarm` (a rise of the normalized 0..1 score since the stage's start, first mode,
    above which `bias/drift_alarm` is 1 and a warning is printed once; None = no alarm)."""

    def __init__(
        self,
        instrument: str = "demo",
        items_file: str | None = None,
        every_n_steps: int = 100,
        dirpath: str | None = None,
        modes: Sequence[str] = ("logprob",),
        template: str = "chimed",
        limit: int | None = None,
        batch_size: int = 8,
        tokenizer: Any = None,
        drift_alarm: float | None = 0.1,
    ):
        if every_n_steps < 0:
            raise ConfigError(f"BiasScaleCallback every_n_steps={every_n_steps}: expected >= 0")
        self.instrument_name, self.items_file = instrument, items_file
        self.every_n_steps, self.dirpath = every_n_steps, dirpath
        self.modes, self.template = tuple(modes), template
        self.limit, self.batch_size, self.tokenizer = limit, batch_size, tokenizer
        self.drift = DriftAlarm(drift_alarm)
        self.history: dict[int, dict[str, Any]] = {}  # step -> run_scale metrics
        self.instrument = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        from chimed_lit.eval.errors import EvalDataError
        from chimed_lit.eval.keys_builtin import load_scale

        self.drift.reset()  # runs before a checkpoint's state is loaded
        self.tokenizer = find_tokenizer(self.tokenizer, trainer, "BiasScaleCallback")
        try:
            self.instrument = load_scale(self.instrument_name, self.items_file)
        except EvalDataError as e:
            raise DataError(e.file or "<instrument>", e.message, field=e.field) from None
        except ValueError as e:
            raise ConfigError(f"BiasScaleCallback: {e}") from None

    def state_dict(self) -> dict[str, Any]:
        return {"drift_baseline": self.drift.baseline}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.drift.baseline = state_dict.get("drift_baseline")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.drift.baseline is None:  # a resumed stage already has its start's score
            self.score(trainer, pl_module)

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        step = trainer.global_step
        if self.every_n_steps and step > 0 and step % self.every_n_steps == 0:
            self.score(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.score(trainer, pl_module)

    def score(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any] | None:
        """Score the scale at the current step (once per step); log and plot it."""
        from chimed_lit.eval.api import make_render
        from chimed_lit.eval.runners_scales import run_scale

        step = trainer.global_step
        if step in self.history:
            return None
        model = pl_module.model
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                result = run_scale(
                    model,
                    self.tokenizer,
                    self.instrument,
                    modes=self.modes,
                    render=make_render(self.template, self.tokenizer),
                    batch_size=self.batch_size,
                    limit=self.limit,
                )
        finally:
            model.train(was_training)
        metrics = self.history[step] = result["metrics"]
        drift = self.drift.update(
            step, metrics, self.modes, self.instrument.name, trainer.is_global_zero
        )
        log_scalars(trainer, {**self.scalars(metrics), **drift})
        if trainer.is_global_zero:
            self._wandb_table(trainer)
            self.plot(self.png_path(trainer))
        return result

    def scalars(self, metrics: dict[str, Any]) -> dict[str, float]:
        out: dict[str, float] = {}
        for i, mode in enumerate(self.modes):
            m, prefix = metrics[mode], "bias/" if i == 0 else f"bias/{mode}/"
            for key in ("bias_score", "bias_score_normalized"):
                if m.get(key) is not None:
                    out[prefix + key] = float(m[key])
            out[prefix + "degenerate"] = float(bool(m["degenerate"]))
            out.update(
                {
                    f"{prefix}subscale/{s}": float(v)
                    for s, v in m["subscales"].items()
                    if v is not None
                }
            )
        return out

    def rows(self) -> list[list[Any]]:
        """[step, mode, label, score] for every scored step: the scale and each subscale."""
        name = self.instrument.name
        out = []
        for step, metrics in self.history.items():
            for mode, m in metrics.items():
                out.append([step, mode, name, m.get("bias_score")])
                out += [[step, mode, f"{name}/{s}", v] for s, v in m["subscales"].items()]
        return out

    def png_path(self, trainer: L.Trainer) -> Path:
        return Path(self.dirpath or trainer.default_root_dir) / "bias_scale.png"

    def plot(self, path: Path) -> Path:
        """One bar group per scale/subscale, one bar per scored step (first mode)."""
        from chimed_lit.eval.report import plot_scale_scores

        mode = self.modes[0]
        scores = {
            f"step {step}": {
                label: value
                for step_, m_, label, value in self.rows()
                if step_ == step and m_ == mode
            }
            for step in self.history
        }
        return plot_scale_scores(
            scores,
            path,
            ylabel="bias score (1 = least)",
            title=f"{self.instrument.name} by training step",
        )

    def _wandb_table(self, trainer: L.Trainer) -> None:
        from lightning.pytorch.loggers import WandbLogger

        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_table(
                    key="bias/scale_table",
                    columns=["step", "mode", "label", "score"],
                    data=self.rows(),
                    step=trainer.global_step,
                )
