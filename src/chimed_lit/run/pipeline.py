"""The regime as a pipeline: a stage runs after the stages it needs, reusing unchanged ones.

`pretrain -> sft -> reward -> rlhf` (and `dpo` beside `reward + rlhf`). Each upstream stage is
composed from its own stage config plus the run-wide overrides (`run/run_wide.py`) and any
`<stage>.key=value` overrides; overrides without a stage prefix apply to the target stage only. A stage whose resolved config and input files are
unchanged (same fingerprint in `<stage>/stage.json`, `hf/` present) is reused, not retrained.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from chimed_lit.demo import demo_path
from chimed_lit.io.atomic import write_json
from chimed_lit.io.errors import ChimedError
from chimed_lit.run.compose import compose_stage
from chimed_lit.run.preflight import preflight
from chimed_lit.run.registry import stage_of
from chimed_lit.run.stage_runner import stage_context
from chimed_lit.stages import stage_dir

log = logging.getLogger("chimed_lit")

_VOLATILE = ("resume", "logger", "callbacks", "paths", "stage_overrides", "checkpoint", "hydra")


def file_digest(path: str) -> str:
    h = hashlib.sha256()
    p = Path(path).expanduser()
    if not p.is_file():  # a Hub id: its name stands for it
        return f"hub:{path}"
    with p.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fingerprint(cfg: DictConfig, upstream: list[str], data_files: list[str]) -> str:
    """Hash of what determines a stage's result: its resolved config (less logging and paths),
    the fingerprints of the stages it starts from, and the bytes of its input files. Like the
    code of its modules, the stage's class (`stage.spec`) is not part of it."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    for key in _VOLATILE:
        resolved.pop(key, None)
    (resolved.get("stage") or {}).pop("spec", None)
    payload = json.dumps(
        {"cfg": resolved, "upstream": upstream, "files": [file_digest(f) for f in data_files]},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def data_files(cfg: DictConfig) -> list[str]:
    """The stage's input files (demo files when none are configured)."""
    files = list(cfg.data.get("train_files") or []) + list(cfg.data.get("val_files") or [])
    if not cfg.data.get("train_files"):
        files += [demo_path(n) for n in get_class(cfg.data._target_).demo_files]
    return files


def direct_needs(cfg: DictConfig, cli_pretrained: bool = False) -> list[str]:
    """Stages this one starts from (`Stage.needs`: `model.pretrained` given on the command line
    replaces the first; RL's `stage.policy` / `stage.reward_model` replace sft / reward). A stage
    whose class cannot be made plans with its YAML's `stage.needs`, so the preflight reports
    why together with every other problem of the run."""
    try:
        stage = stage_of(cfg)
    except ChimedError:
        return list(cfg.stage.get("needs") or [])
    return stage.needs(cfg, cli_pretrained)


def plan(cfg: DictConfig, task_overrides: list[str]) -> list[tuple[str, DictConfig]]:
    """(stage, config) to run, upstream first (each once), ending with the target stage."""
    cli_pretrained = any(o.lstrip("+").startswith("model.pretrained=") for o in task_overrides)
    order: list[tuple[str, DictConfig]] = []

    def visit(name: str, scfg: DictConfig, is_target: bool) -> None:
        for need in direct_needs(scfg, cli_pretrained and is_target):
            if need not in (n for n, _ in order):
                visit(need, compose_stage(need, task_overrides, cfg.paths.output_dir), False)
        order.append((name, scfg))

    target = cfg
    if (cfg.get("stage_overrides") or {}).get(cfg.stage.name):  # e.g. rlhf.strategy=ddp
        target = compose_stage(cfg.stage.name, task_overrides, cfg.paths.output_dir, own=True)
    visit(cfg.stage.name, target, True)
    return order


def inner_stages(
    stages: list[tuple[str, DictConfig]], task_overrides: list[str]
) -> list[tuple[str, DictConfig]]:
    """(label, config) of the stages the planned ones build themselves (`Stage.inner_configs`:
    rejection sampling's SFT rounds), composed as their `run` will compose them."""
    out = []
    for name, scfg in stages:
        try:
            stage = stage_of(scfg)
        except ChimedError:
            continue  # the preflight reports why
        compose = stage_context(scfg, task_overrides).compose  # what its `run` will get
        out += [(f"{name} {label}", icfg) for label, icfg in stage.inner_configs(scfg, compose)]
    return out


def run_pipeline(
    cfg: DictConfig,
    task_overrides: list[str],
    run_name: str | None = None,
    group: str | None = None,
    check: Callable[[list[tuple[str, DictConfig]]], None] = preflight,
) -> dict[str, Any]:
    """Run (or reuse) every stage the target needs, then the target; returns its summary.
    `check` (the one preflight) sees every planned stage's config before any stage runs."""
    stages = plan(cfg, task_overrides)
    # what cannot run here stops the run before any stage trains; a stage's inner stages (its
    # rounds) are checked before the target, so the target's problems read as its own
    check([*stages[:-1], *inner_stages(stages, task_overrides), stages[-1]])
    fps: dict[str, str] = {}
    summary: dict[str, Any] = {}
    for name, scfg in stages:
        is_target = name == stages[-1][0]
        needs = [n for n in (scfg.stage.get("needs") or []) if n in fps]
        fp = fingerprint(scfg, [fps[s] for s in needs], data_files(scfg))
        fps[name] = fp
        sdir = stage_dir(scfg)
        done = sdir / "stage.json"
        if (
            done.is_file()
            and json.loads(done.read_text()).get("fingerprint") == fp
            and (sdir / "hf").is_dir()
            and not (scfg.resume and is_target)
        ):
            log.info(
                "reusing %s: config and inputs unchanged (%s); change a setting or delete "
                "%s to retrain it",
                name,
                sdir,
                done,
            )
            summary = json.loads((sdir / "summary.json").read_text())
            continue
        upstream = {n: str(stage_dir(scfg).parent / n / "hf") for n in needs}
        log.info("running %s -> %s", name, sdir)
        ctx = stage_context(
            scfg, task_overrides, upstream, f"{run_name or ''}{name}", group, fingerprint=fp
        )
        summary = stage_of(scfg).run(scfg, ctx)
        write_json(done, {"stage": name, "fingerprint": fp, "complete": True})
    return summary
