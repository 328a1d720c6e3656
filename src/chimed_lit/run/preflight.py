"""The one preflight of `chimed-lit fit`: every check of every planned stage, once, before
anything is built, reported together in one `ConfigError`.

`run_pipeline` calls `preflight` once over the whole plan. The checks every stage shares are
here (values left `???`, what this machine cannot run, impossible strategies, the reliability
knobs, QLoRA, values out of range: `data.*` sizes and shares, the trainer's step counts, the
checkpoint interval, learning rates, an output dir that is a file); a stage's own checks are its `Stage.problems` (`chimed_lit.stages.*`), collected
through the registry. A problem of the target stage is reported as it is; one that only an
upstream stage has names that stage.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from chimed_lit.callbacks.nonfinite import check_policy
from chimed_lit.data.base import data_problems
from chimed_lit.io.checkpoints import check_verify
from chimed_lit.io.errors import ChimedError, ConfigError
from chimed_lit.models.lora import check_quantize
from chimed_lit.plugins.deepspeed import zero_config_problems
from chimed_lit.run.registry import stage_of


def preflight(stages: list[tuple[str, DictConfig]]) -> None:
    """Check every (stage, config) of a plan (the target last); raise one `ConfigError`
    listing every problem found."""
    target = stages[-1][0] if stages else None
    found: dict[str, list[str]] = {}  # problem -> the stages that have it, in plan order
    for name, cfg in stages:
        for problem in missing_values(cfg, is_target=name == target) + stage_problems(cfg):
            found.setdefault(problem, []).append(name)
    if found:
        raise ConfigError(
            [
                p if target in names else f"{p} (in the {', '.join(names)} stage config)"
                for p, names in found.items()
            ]
        )


def missing_values(cfg: DictConfig, is_target: bool) -> list[str]:
    """The values a stage's config leaves `???` (a preset's required path, say), each with the
    argument that sets it: `k=...` for the target stage, `<stage>.k=...` for another."""
    prefix = "" if is_target else f"{cfg.stage.name}."
    return [
        f"{k} is required for the {cfg.stage.name} stage (set {prefix}{k}=... on the command line)"
        for k in sorted(OmegaConf.missing_keys(cfg))
    ]


def stage_problems(cfg: DictConfig) -> list[str]:
    """Every problem of one stage's composed config (its `???` values aside: `missing_values`):
    the shared checks, then the stage's own."""
    problems = _runtime_problems(cfg)
    problems += _strategy_problems(cfg)
    problems += _value_problems(cfg)
    for check, value in (
        (check_policy, cfg.get("on_nonfinite", "stop")),
        (check_verify, (cfg.get("checkpoint") or {}).get("verify", "full")),
        (check_quantize, cfg.get("lora")),
    ):
        problems += _raised(check, value)
    try:
        problems += stage_of(cfg).problems(cfg)
    except ChimedError as e:  # the stage itself cannot be resolved
        problems += getattr(e, "problems", [str(e)])
    return problems


def _raised(check: Callable[[object], None], value: object) -> list[str]:
    """The problems a raising check finds (the checks live beside what they check)."""
    try:
        check(value)
    except ConfigError as e:
        return e.problems
    return []


def _on_cpu(accelerator: str | None) -> bool:
    if accelerator == "cpu":
        return True
    if accelerator in ("auto", None):
        return not torch.cuda.is_available()
    return False


def _runtime_problems(cfg: DictConfig) -> list[str]:
    """What cannot run on this machine."""
    out = []
    precision = str(cfg.trainer.get("precision", "32-true"))
    if _on_cpu(cfg.trainer.get("accelerator", "auto")) and precision.startswith("16"):
        out.append(
            f"trainer.precision={precision} on a CPU: fp16 is not supported there "
            "(use 32-true, or bf16-mixed on CPUs with bf16 support)"
        )
    if cfg.model.get("dtype") in ("float16", "fp16") and _on_cpu(cfg.trainer.get("accelerator")):
        out.append("model.dtype=float16 on a CPU: use float32 or bfloat16")
    return out


def _strategy_problems(cfg: DictConfig) -> list[str]:
    """Combinations of `strategy=` with the trainer that cannot work (a stage's own
    combinations, such as PPO with DeepSpeed, are its `problems`)."""
    strategy = cfg.get("strategy") or {}
    if str(strategy.get("_target_", "")).rsplit(".", 1)[-1] != "deepspeed":
        return []
    out = zero_config_problems(
        strategy.get("zero_stage"),
        bool(strategy.get("offload_parameters")),
        bool(strategy.get("offload_optimizer")),
    )
    if cfg.trainer.get("gradient_clip_algorithm", "norm") != "norm":
        out.append("trainer.gradient_clip_algorithm=value: DeepSpeed clips by norm only")
    return out


DATA_KEYS = (
    "batch_size",
    "eval_batch_size",
    "max_length",
    "val_fraction",
    "max_dropped_fraction",
    "encoding",
    "on_bad_record",
)


def _value_problems(cfg: DictConfig) -> list[str]:
    """Values of the right type but out of range, each naming its key: what would otherwise
    fail deep inside torch or Lightning with a traceback, or (worse) run and do nothing."""
    out = output_dir_problems(cfg)
    data = cfg.get("data")
    if isinstance(data, DictConfig) and data.get("_target_"):
        values = {k: _value(data, k) for k in DATA_KEYS if k in data}
        out += data_problems(**{k: v for k, v in values.items() if v is not _UNSET})
    trainer = cfg.get("trainer") or {}
    steps, epochs = _value(trainer, "max_steps"), _value(trainer, "max_epochs")
    if steps is not _UNSET and steps is not None:
        if not _is_int(steps) or steps == 0 or steps < -1:
            out.append(
                f"trainer.max_steps={steps}: expected a positive integer (optimizer steps), "
                "or -1 to train for trainer.max_epochs"
                + (" (0 would export the starting weights untrained)" if steps == 0 else "")
            )
        elif steps == -1 and (epochs is None or epochs == -1):
            out.append(
                f"trainer.max_steps=-1 with trainer.max_epochs={epochs}: training would never "
                "end; set one of them"
            )
    if (
        epochs is not _UNSET
        and epochs is not None
        and (not _is_int(epochs) or epochs == 0 or epochs < -1)
    ):
        out.append(f"trainer.max_epochs={epochs}: expected a positive integer, or -1")
    every = _value(cfg.get("checkpoint") or {}, "every_n_steps")
    if every is not _UNSET and not (_is_int(every) and every > 0):
        out.append(
            f"checkpoint.every_n_steps={every}: expected a positive integer (0 or less would "
            "turn step checkpoints off, and with them resume=true)"
        )
    out += _lr_problems(cfg)
    return out


def output_dir_problems(cfg: DictConfig) -> list[str]:
    """`paths.output_dir` must be a directory, or creatable as one (no file in its way). The
    CLI also runs this before Hydra creates the directory (`check_overrides(validate=...)`)."""
    raw = _value(cfg.get("paths") or {}, "output_dir")
    if raw is _UNSET or raw is None:
        return []
    path = Path(str(raw)).expanduser()
    for p in (path, *path.parents):
        if p.exists():
            if p.is_dir():
                return []
            what = "is a file" if p == path else f"cannot be created: {p} is a file"
            return [f"paths.output_dir={str(raw)!r} {what}, not a directory; name a directory"]
    return []


def _lr_problems(cfg: DictConfig) -> list[str]:
    """Every `lr` of every optimizer in the config (`optimizer.lr`, PPO's actor and critic
    optimizers ...) is a finite positive number."""
    out = []

    def walk(node: Any, prefix: str) -> None:
        if not isinstance(node, DictConfig):
            return
        for key in node:
            full = f"{prefix}{key}"
            if full.startswith(("hydra", "stage_overrides")):
                continue
            value = _value(node, key)
            if key == "lr" and isinstance(value, int | float) and not isinstance(value, bool):
                if not math.isfinite(value) or value <= 0:
                    out.append(f"{full}={value}: expected a finite positive learning rate")
            elif isinstance(value, DictConfig):
                walk(value, full + ".")

    walk(cfg, "")
    return out


_UNSET = object()


def _value(node: Any, key: str) -> Any:
    """`node[key]` resolved, or `_UNSET` when it is missing, `???` or cannot be resolved (those
    are reported by `missing_values` or where they are used)."""
    try:
        if isinstance(node, DictConfig):
            if key not in node or OmegaConf.is_missing(node, key):
                return _UNSET
            return node[key]
        return node.get(key, _UNSET)
    except Exception:  # noqa: BLE001 (an interpolation that does not resolve here)
        return _UNSET


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
