"""Running one stage: compose -> instantiate -> validate -> fit -> validate -> export.

Reads like a recipe: everything it builds comes from the config by `_target_`, and it writes
the stage's outputs under `<output_dir>/<stage>/`: `checkpoints/`, `hf/`, `summary.json`,
`config.yaml` and `initial_metrics.json`.

A failed run leaves the previous run's `hf/`, `summary.json` and `config.yaml` as they were:
the running config is `config.next.yaml` until the export succeeds, then `hf/` is swapped in,
`summary.json` written and `config.next.yaml` renamed to `config.yaml` (the pipeline removes
`stage.json` before and writes it after). `resume=true` first checks the checkpoint's run record
against this run's (`run/resume_guard.py`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import get_object, instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from omegaconf import DictConfig, OmegaConf

from chimed_lit.callbacks.final_checkpoint import FinalCheckpoint
from chimed_lit.callbacks.nonfinite import NonFiniteGuard
from chimed_lit.callbacks.preemption import PreemptionCheckpoint
from chimed_lit.callbacks.resumed_validation import ResumedValidation
from chimed_lit.io.atomic import write_json, write_text
from chimed_lit.io.checkpoints import (
    AtomicCheckpointIO,
    checkpoint_plugins,
    checkpoint_step,
    find_resume_checkpoint,
    prune_step_checkpoints,
)
from chimed_lit.io.csv_metrics import ResumableCSVLogger
from chimed_lit.io.leftovers import is_rank_zero
from chimed_lit.io.loggers import wandb_logger
from chimed_lit.io.redaction import redact, redacted_yaml
from chimed_lit.models.export import export_hf
from chimed_lit.models.packing_check import check_packing
from chimed_lit.plugins.full_weights import full_state_dict
from chimed_lit.run.compose import compose_sibling
from chimed_lit.run.fingerprints import run_record
from chimed_lit.run.registry import stage_of
from chimed_lit.run.resume_guard import ResumeRecord, check_resume
from chimed_lit.stages import RUNNING_CONFIG, StageContext, stage_dir

log = logging.getLogger("chimed_lit")

# callbacks that write into the stage's checkpoints/ folder (and their subclasses): the runner
# gives them `dirpath=<output_dir>/<stage>/checkpoints`
CHECKPOINT_WRITERS = (ModelCheckpoint, FinalCheckpoint, PreemptionCheckpoint, NonFiniteGuard)


def _is_a(target: Any, kinds: tuple[type, ...]) -> bool:
    return isinstance(target, type) and issubclass(target, kinds)


def _loggers(cfg: DictConfig, stage: str, run_name: str, group: str | None) -> list[Any]:
    """The config's loggers, one W&B run per stage (named for the sweep job), CSV under
    `<stage>/csv/`."""
    from chimed_lit.io.redaction import refuse_credentials

    loggers = []
    for name, spec in (cfg.logger or {}).items():
        if spec is None:
            continue
        refuse_credentials(spec, f"logger.{name}")  # W&B / SwanLab keep their fields in clear
        target = get_object(spec._target_)
        extra: dict[str, Any] = {}
        if target is wandb_logger or _is_a(target, (WandbLogger,)):
            import wandb

            if wandb.run is not None:  # WandbLogger would log into it: one run per stage
                log.warning("finishing the W&B run already in progress (%s)", wandb.run.name)
                wandb.finish()
            extra = {"name": run_name, "group": group, "job_type": stage}
        elif _is_a(target, (CSVLogger,)):
            extra = {"name": f"{stage}/csv", "version": ""}
        logger = instantiate(spec, **extra)
        logger.log_hyperparams(redact(OmegaConf.to_container(cfg, resolve=True)))
        loggers.append(logger)
        log.info("logging to %s", name)
    return loggers


def _resume_point(
    cfg: DictConfig, sdir: Path, stage: str, record: dict[str, Any]
) -> tuple[str | None, dict[str, Any] | None]:
    """With `resume=true`: the checkpoint to continue (None: start afresh) and what
    `summary.json` records of it, once its run record matches this run's (exit 2 otherwise)."""
    if not cfg.resume:
        return None, None
    verify = (cfg.get("checkpoint") or {}).get("verify", "full")
    ckpt = find_resume_checkpoint(sdir, stage, verify)
    if ckpt is None:
        log.warning("resume=true but no checkpoint under %s: starting from scratch", sdir)
        return None, None
    allow = bool(cfg.get("resume_allow_config_change", False))
    info = check_resume(ckpt, record, stage, allow)
    return ckpt, {**info, "step": checkpoint_step(ckpt)}


def _prune_step_checkpoints(cfg: DictConfig, sdir: Path, keep_too: str | None) -> None:
    """`save_top_k` across restarts: a `ModelCheckpoint` removes only what its own process saved
    (and Lightning orders it after `FinalCheckpoint`, so `last.ckpt` names the file before the
    newest): at start, the newest `save_top_k` step checkpoints stay (and the one resumed from),
    and after fit the newest `save_top_k` of all."""
    for spec in (cfg.callbacks or {}).values():
        if spec is None or not _is_a(get_object(spec._target_), (ModelCheckpoint,)):
            continue
        if spec.get("monitor") is None:  # top-k by a metric: the callback's state tracks it
            k = int(spec.get("save_top_k", 1))
            prune_step_checkpoints(sdir / "checkpoints", spec.get("filename"), k, keep_too)


def _promote(sdir: Path) -> None:
    """The running config becomes the stage's `config.yaml` (after `hf/` and `summary.json`)."""
    if (sdir / RUNNING_CONFIG).is_file():
        os.replace(sdir / RUNNING_CONFIG, sdir / "config.yaml")


def _callbacks(cfg: DictConfig, sdir: Path) -> list[Any]:
    out = []
    for spec in (cfg.callbacks or {}).values():
        if spec is None:
            continue
        writes = _is_a(get_object(spec._target_), CHECKPOINT_WRITERS)
        out.append(instantiate(spec, **({"dirpath": str(sdir / "checkpoints")} if writes else {})))
    return out


def build_models(cfg: DictConfig, factory: Any, upstream: dict[str, str]) -> tuple[Any, dict]:
    """The tokenizer and the models the stage's module takes (`Stage.build_models`)."""
    return stage_of(cfg).build_models(cfg, factory, upstream)


def stage_context(
    cfg: DictConfig,
    task_overrides: list[str] | None = None,
    upstream: dict[str, str] | None = None,
    run_name: str | None = None,
    group: str | None = None,
    fingerprint: str | None = None,
) -> StageContext:
    """What a stage's `run` gets from the run layer: the shared runner and this run's
    composition (`task_overrides`: the command line's, empty outside the Hydra app)."""
    return StageContext(
        fit=partial(run_stage, group=group),
        compose=lambda name, out: compose_sibling(cfg, name, out, list(task_overrides or [])),
        upstream=dict(upstream or {}),
        run_name=run_name,
        fingerprint=fingerprint,
    )


def run_stage(
    cfg: DictConfig,
    upstream: dict[str, str] | None = None,
    run_name: str | None = None,
    group: str | None = None,
    fingerprint: str | None = None,
) -> dict[str, Any]:
    """Train the stage `cfg.stage.name` with Trainer.fit (`Stage` says which models); `upstream`
    maps the stages it starts from to their hf/ dirs. The config has passed `run.preflight`."""
    started = time.time()
    stage, sdir, spec = cfg.stage.name, stage_dir(cfg), stage_of(cfg)

    # 0. resume: the newest usable checkpoint, refused when config or inputs changed
    record = run_record(cfg, upstream or {})
    ckpt, resumed = _resume_point(cfg, sdir, stage, record)

    # 1. seed, tokenizer, models and data (bad data fails before training starts)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    factory = instantiate(cfg.model)
    spec.check_models(cfg, upstream or {})
    tokenizer, models = spec.build_models(cfg, factory, upstream or {})
    datamodule = instantiate(cfg.data, tokenizer=tokenizer)
    datamodule.setup("fit")
    log.info("%s data: %s", stage, datamodule.stats)

    # 2. the LightningModule (packed data needs models that keep packed sequences apart)
    extra = check_packing(
        stage, models, bool(getattr(datamodule, "pack", False)), cfg.stage.get("module")
    )
    if cfg.get("scheduler"):
        extra["scheduler"] = instantiate(cfg.scheduler)
    if cfg.get("optimizer"):
        extra["optimizer"] = instantiate(cfg.optimizer)
    module = instantiate(cfg.stage.module, **models, **extra)

    # 3. trainer with the strategy, callbacks and loggers of the config
    sdir.mkdir(parents=True, exist_ok=True)
    write_text(sdir / RUNNING_CONFIG, redacted_yaml(cfg))
    if is_rank_zero():
        _prune_step_checkpoints(cfg, sdir, ckpt)
    strategy = instantiate(cfg.strategy)
    loggers = _loggers(cfg, stage, run_name or stage, group)
    plugins = checkpoint_plugins(strategy, stage, instantiate(cfg.trainer.get("plugins") or []))
    # folder checkpoints (DeepSpeed, FSDP2) keep the run record beside them too
    sidecar = (
        None if any(isinstance(p, AtomicCheckpointIO) for p in plugins) else sdir / "checkpoints"
    )
    step = (resumed or {}).get("step")
    for lg in loggers:  # a resume keeps the interrupted run's rows up to its checkpoint
        if isinstance(lg, ResumableCSVLogger) and ckpt is None:
            lg.start_fresh()  # trained from scratch: an earlier run's rows do not belong
        elif isinstance(lg, ResumableCSVLogger) and step is not None:
            lg.drop_steps_after(step)
    trainer = instantiate(
        cfg.trainer,
        strategy=strategy,
        callbacks=[
            *_callbacks(cfg, sdir),
            ResumeRecord(record, sidecar),
            ResumedValidation(sdir / "checkpoints"),  # last: after the RNG state is restored
        ],
        plugins=plugins,
        logger=loggers or False,
        default_root_dir=str(sdir),
    )

    # 4. validation before training (kept across resumes), then fit
    initial_file = sdir / "initial_metrics.json"
    if ckpt is None or not initial_file.is_file():
        initial = _metrics(trainer.validate(module, datamodule=datamodule, verbose=False))
        write_json(initial_file, initial)
    else:
        initial = json.loads(initial_file.read_text())
        log.info("resuming %s from %s", stage, ckpt)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
    if trainer.is_global_zero:  # this process's own top-k did not see the earlier runs' files
        _prune_step_checkpoints(cfg, sdir, None)
    train_loss = _scalar(trainer.callback_metrics.get(f"{stage}/train_loss"))
    final = _metrics(trainer.validate(module, datamodule=datamodule, verbose=False))

    # 5. export (plain transformers can load it) and the summary
    summary: dict[str, Any] = {
        "stage": stage,
        "global_step": trainer.global_step,
        "hf_dir": str(sdir / "hf"),
        "initial": initial,
        "final": final,
        "data": datamodule.stats,
        "train_loss": train_loss,
        "elapsed_s": round(time.time() - started, 1),
        "fingerprint": fingerprint,
    }
    if resumed is not None:
        summary["resume"] = resumed
    exported = spec.export_model(module)
    weights = full_state_dict(trainer.strategy, exported)  # ZeRO-3/FSDP2: a collective
    if trainer.is_global_zero:
        # LoRA: merged + hf_adapter/
        summary.update(export_hf(exported, tokenizer, sdir, state_dict=weights))
        write_json(sdir / "summary.json", summary)
        _promote(sdir)
    for lg in trainer.loggers:
        if isinstance(lg, WandbLogger):
            lg.experiment.finish()
    return summary


def _scalar(v: Any) -> float | None:
    return None if v is None else float(v)


def _metrics(results: list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in results or []:
        out.update({k: float(v) for k, v in r.items()})
    return out
