"""The one preflight of `chimed-lit fit`: every check of every planned stage, once, before
anything is built, reported together in one `ConfigError`.

`run_pipeline` calls `preflight` once over the whole plan. The checks every stage shares are
here (values left `???`, what this machine cannot run, impossible strategies, the reliability
knobs, QLoRA); a stage's own checks are its `Stage.problems` (`chimed_lit.stages.*`), collected
through the registry. A problem of the target stage is reported as it is; one that only an
upstream stage has names that stage.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from omegaconf import DictConfig, OmegaConf

from chimed_lit.callbacks.nonfinite import check_policy
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
