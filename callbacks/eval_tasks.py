"""`EvalTasksCallback`: run one evaluation task of `chimed_lit.eval` during `fit`.

Every `every_n_steps` optimizer steps (and at the end of training) the current model (eval mode,
no grad, train mode restored) answers the first `limit` examples of each file; the task's
headline metrics, averaged over the files, are logged as `eval/<task>_<metric>`: `eval/ner_f1`,
`eval/mcq_accuracy` (first mode), `eval/dialogue_bleu_4`, `eval/dialogue_rouge_l`,
`eval/scale_bias_score`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from chimed_lit.io.errors import ConfigError

from .bias_scale import find_tokenizer, log_scalars

_TASKS = ("ner", "mcq", "dialogue", "scale")
_CHEAP_MODES = {"mcq": ("letter",), "scale": ("logprob",)}


class EvalTasksCallback(L.Callback):
    """Knobs: `task` (ner, mcq, dialogue, scale), `files` (its data files; scale: none),
    `every_n_steps` (0 = only at the end), `limit` (examples per file), `fmt` (null =
    detected), `batch_size`, `max_new_tokens` (None = the task's default), `modes` (None: mcq
    letter, scale logprob, the cheap ones), `template` (chimed, ziya, tokenizer),
    `fewshot_file` + `k_shot`, `instrument` + `items_file` (scale), `tokenizer` (None = the
    DataModule's)."""

    def __init__(
        self,
        task: str,
        files: Sequence[str] = (),
        every_n_steps: int = 100,
        limit: int | None = 5,
        fmt: str | None = None,
        batch_size: int = 8,
        max_new_tokens: int | None = None,
        modes: Sequence[str] | None = None,
        template: str = "chimed",
        fewshot_file: str | None = None,
        k_shot: int = 0,
        instrument: str = "demo",
        items_file: str | None = None,
        tokenizer: Any = None,
    ):
        problems = []
        if task not in _TASKS:
            problems.append(f"EvalTasksCallback task={task!r}: expected one of {', '.join(_TASKS)}")
        elif task != "scale" and not files:
            problems.append(f"EvalTasksCallback task={task} needs files=[...] (no data is shipped)")
        problems += [
            f"EvalTasksCallback: no such file {f!r}"
            for f in files
            if not Path(f).expanduser().is_file()
        ]
        if every_n_steps < 0:
            problems.append(f"EvalTasksCallback every_n_steps={every_n_steps}: expected >= 0")
        if problems:
            raise ConfigError(problems)
        self.task, self.files, self.every_n_steps = task, [str(f) for f in files], every_n_steps
        self.limit, self.fmt, self.template, self.tokenizer = limit, fmt, template, tokenizer
        self.modes = tuple(modes) if modes is not None else _CHEAP_MODES.get(task)
        self.runner_kwargs: dict[str, Any] = {"batch_size": batch_size}
        if max_new_tokens is not None:
            self.runner_kwargs["max_new_tokens"] = max_new_tokens
        self.fewshot_file, self.k_shot = fewshot_file, k_shot
        self.instrument, self.items_file = instrument, items_file
        self.history: dict[int, dict[str, float]] = {}  # step -> logged metrics

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.tokenizer = find_tokenizer(self.tokenizer, trainer, "EvalTasksCallback")

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
            self.evaluate(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.evaluate(trainer, pl_module)

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float] | None:
        """Run the task at the current step (once per step) and log its headline metrics."""
        from chimed_lit.eval.api import headline, library_call, make_render
        from chimed_lit.eval.tasks import run_eval

        step = trainer.global_step
        if step in self.history:
            return None
        kwargs = dict(self.runner_kwargs, render=make_render(self.template, self.tokenizer))
        if self.modes is not None:
            kwargs["modes"] = list(self.modes)
        if self.task == "scale":
            kwargs.update(instrument=self.instrument, items_file=self.items_file)
        else:
            kwargs.update(
                files=self.files, fmt=self.fmt, fewshot_file=self.fewshot_file, k_shot=self.k_shot
            )
        model = pl_module.model
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                result = library_call(
                    run_eval, self.task, model, self.tokenizer, limit=self.limit, **kwargs
                )
        finally:
            model.train(was_training)
        metrics = self.summarise(headline(self.task, result))
        self.history[step] = metrics
        log_scalars(trainer, metrics)
        return metrics

    def summarise(self, columns: dict[str, Any]) -> dict[str, float]:
        """{"mcq/<file>/letter/accuracy": v, ...} -> {"eval/mcq_accuracy": mean over files}."""
        by_metric: dict[str, list[float]] = {}
        for column, value in columns.items():
            if value is not None:
                by_metric.setdefault(column.rsplit("/", 1)[-1], []).append(float(value))
        return {f"eval/{self.task}_{k}": sum(v) / len(v) for k, v in by_metric.items()}
