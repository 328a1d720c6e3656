"""The regime as a pipeline: a stage runs after the stages it needs, reusing unchanged ones.

`pretrain -> sft -> reward -> rlhf` (and `dpo` beside `reward + rlhf`). Each upstream stage is
composed from its own stage config plus the run-wide overrides (`run/run_wide.py`) and any
`<stage>.key=value` overrides; overrides without a stage prefix apply to the target stage only. A stage whose resolved config and input files are
unchanged (same fingerprint in `<stage>/stage.json`, `hf/` present) is reused, not retrained.
`stage.json` is removed before a stage runs and written once its outputs are in place, so it
never vouches for an `hf/` it did not see. Each run starts by removing what killed runs left
under `paths.output_dir` and in the datasets caches (`io/leftovers.py`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from chimed_lit.io.atomic import write_json, write_text
from chimed_lit.io.errors import ChimedError
from chimed_lit.io.leftovers import remove_leftovers
from chimed_lit.run.compose import compose_stage
from chimed_lit.run.fingerprints import data_files, fingerprint
from chimed_lit.run.preflight import preflight
from chimed_lit.run.registry import stage_of
from chimed_lit.run.stage_runner import stage_context
from chimed_lit.stages import stage_dir

log = logging.getLogger("chimed_lit")


def _identity(path: Path) -> tuple[int, int] | None:
    """What changes when a folder is swapped (`atomic.write_dir` renames a new one in)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


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
    remove_leftovers(
        cfg.paths.output_dir,
        [str(s.data.get("cache_dir") or "") for _, s in stages if s.get("data")],
    )
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
        was = done.read_text() if done.is_file() else None
        hf_before = _identity(sdir / "hf")
        done.unlink(missing_ok=True)  # until the new outputs are in place
        ctx = stage_context(
            scfg, task_overrides, upstream, f"{run_name or ''}{name}", group, fingerprint=fp
        )
        try:
            summary = stage_of(scfg).run(scfg, ctx)
        except BaseException:
            if was is not None and _identity(sdir / "hf") == hf_before:
                write_text(done, was)  # failed before touching hf/: it still vouches for it
            raise
        write_json(done, {"stage": name, "fingerprint": fp, "complete": True})
    return summary
