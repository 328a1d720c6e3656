"""The regime as a pipeline: a stage runs after the stages it needs, reusing unchanged ones.

`pretrain -> sft -> reward -> rlhf` (and `dpo` beside `reward + rlhf`). Each upstream stage is
composed from its own stage config plus the run-wide overrides (`paths`, `seed`, `model`,
`logger`, `resume`, `checkpoint`) and any `<stage>.key=value` overrides; overrides without a
stage prefix apply to the target stage only. A stage whose resolved config and input files are
unchanged (same fingerprint in `<stage>/stage.json`, `hf/` present) is reused, not retrained.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from chimed_lit.io.atomic import write_json
from chimed_lit.run.run_wide import is_run_wide

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
    the fingerprints of the stages it starts from, and the bytes of its input files."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    for key in _VOLATILE:
        resolved.pop(key, None)
    payload = json.dumps(
        {"cfg": resolved, "upstream": upstream, "files": [file_digest(f) for f in data_files]},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def data_files(cfg: DictConfig) -> list[str]:
    """The stage's input files (demo files when none are configured)."""
    from hydra.utils import get_class

    files = list(cfg.data.get("train_files") or []) + list(cfg.data.get("val_files") or [])
    if not cfg.data.get("train_files"):
        from chimed_lit.demo import demo_path

        files += [demo_path(n) for n in get_class(cfg.data._target_).demo_files]
    return files


def direct_needs(cfg: DictConfig, cli_pretrained: bool = False) -> list[str]:
    """Stages this one starts from. `model.pretrained` given on the command line replaces the
    stage it would start from; `stage.policy` / `stage.reward_model` replace sft / reward."""
    needs = list(cfg.stage.get("needs") or [])
    if cli_pretrained and needs and cfg.stage.get("model_kind", "causal_lm") != "ppo":
        needs = needs[1:]
    if cfg.stage.get("policy"):
        needs = [n for n in needs if n != "sft"]
    if cfg.stage.get("reward_model"):
        needs = [n for n in needs if n != "reward"]
    return needs


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


def compose_stage(
    name: str, task_overrides: list[str], output_dir: str, own: bool = False
) -> DictConfig:
    """The config of upstream stage `name` within the running Hydra app (`own`: of the target
    stage itself, which keeps all its overrides).

    Precedence, lowest first: the stage's YAML, run-wide overrides (`strategy=...`), the stage's
    `stage_overrides.<name>` entry (from a recipe or a `<name>.key=value` argument), and, for
    the target, the command line's own overrides."""
    from hydra import compose

    def key(o: str) -> str:
        return o.lstrip("+~").split("=", 1)[0]

    base = [f"stage={name}", f"paths.output_dir={output_dir}"]
    per_stage = [o for o in task_overrides if key(o).startswith("stage_overrides.")]
    wide = [o for o in task_overrides if is_run_wide(o) and key(o) != "paths.output_dir"]
    rest = [
        o
        for o in task_overrides
        if own
        and o not in per_stage
        and o not in wide
        and key(o) not in ("stage", "paths.output_dir")
    ]
    cfg = compose(config_name="fit", overrides=base + wide + per_stage + rest)
    extra = cfg.stage_overrides.get(name)
    flat = (
        []
        if extra is None
        else [
            f"{k}={json.dumps(v) if not isinstance(v, str) else v}"
            for k, v in _flatten(OmegaConf.to_container(extra, resolve=True))
        ]
    )
    if not flat:
        return cfg
    return compose(config_name="fit", overrides=base + wide + per_stage + flat + rest)


def _flatten(d: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(d, dict) and d:
        return [kv for k, v in d.items() for kv in _flatten(v, f"{prefix}{k}.")]
    return [(prefix.rstrip("."), d)]


def run_pipeline(
    cfg: DictConfig,
    task_overrides: list[str],
    run_name: str | None = None,
    group: str | None = None,
) -> dict[str, Any]:
    """Run (or reuse) every stage the target needs, then the target; returns its summary."""
    from chimed_lit.models.lora import check_quantize
    from chimed_lit.run.preflight import check_runtime
    from chimed_lit.run.stage_runner import run_stage, stage_dir

    stages = plan(cfg, task_overrides)
    for _, scfg in stages:  # what cannot run here stops the run before any stage trains
        check_runtime(scfg)
        check_quantize(scfg.get("lora"))
        if scfg.stage.get("model_kind") == "dpo":
            from chimed_lit.modules.dpo import check_dpo_config

            check_dpo_config(scfg.stage.module)
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
        runner = run_stage
        if scfg.stage.get("algorithm") == "rejection_sampling":
            from chimed_lit.stages.rejection_sampling import run_rejection_sampling as runner
        summary = runner(
            scfg, upstream=upstream, run_name=f"{run_name or ''}{name}", group=group, fingerprint=fp
        )
        write_json(done, {"stage": name, "fingerprint": fp, "complete": True})
    return summary
