"""`chimed-lit plan`: GPU memory per stage of the regime, from configs alone (no weights).

Takes the same overrides as `fit` (e.g. `experiment=chimed_gpt_13b trainer.devices=8`) plus
`plan.gpu_memory_gib=80` (memory per GPU), `plan.reserve_gib=2` (kept free for the CUDA
context, communication buffers and fragmentation) and `--json`. Plans the stages up to
`stage=` (default rlhf: the whole regime).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from chimed_lit.io.errors import ConfigError


@dataclass(frozen=True)
class PlanOptions:
    gpu_memory_gib: float = 80.0
    reserve_gib: float = 2.0

    @property
    def budget_bytes(self) -> float:
        from chimed_lit.planning.memory import GIB

        return (self.gpu_memory_gib - self.reserve_gib) * GIB


def split_args(args: list[str]) -> tuple[PlanOptions, bool, list[str], list[str]]:
    """(plan options, --json, the fit overrides with stage= defaulted to the whole regime, the
    `--config-dir` folders: a stage kept outside the package is planned as `fit` runs it)."""
    from chimed_lit.cli.argv import VALUE_FLAGS, config_dirs, split_flags
    from chimed_lit.run.stage_configs import DEFAULT_TARGET

    flags, overrides = split_flags(args)
    values, problems, rest = {}, [], []
    i = 0
    while i < len(flags):  # a flag's value (`--cfg job`) is no flag of its own
        f = flags[i]
        takes = f in VALUE_FLAGS and i + 1 < len(flags) and not flags[i + 1].startswith("-")
        if f not in ("--json", "--config-dir", "-cd") and not f.startswith("--config-dir="):
            problems.append(
                f"unknown flag {f!r} (plan takes key=value overrides, --config-dir DIR and --json)"
            )
        i += 2 if takes else 1
    for a in overrides:
        if a.startswith("plan."):
            key, _, raw = a[5:].partition("=")
            if key not in PlanOptions.__dataclass_fields__:
                problems.append(f"unknown key 'plan.{key}' (plan.gpu_memory_gib, plan.reserve_gib)")
                continue
            try:
                values[key] = float(raw)
            except ValueError:
                problems.append(f"plan.{key}={raw!r}: expected a number of GiB")
            continue
        rest.append(a)
    if problems:
        raise ConfigError(problems)
    if not any(a.startswith("stage=") for a in rest):
        rest.insert(0, f"stage={DEFAULT_TARGET}")
    return PlanOptions(**values), "--json" in flags, rest, config_dirs(flags)


def build_plans(args: list[str]):
    """[(StagePlan, Advice)] for the stages `args` select; also the PlanOptions."""
    from chimed_lit.cli.argv import route_stage_prefixes
    from chimed_lit.cli.overrides import check_overrides
    from chimed_lit.planning.advice import advise
    from chimed_lit.planning.model_size import config_dict, measure
    from chimed_lit.planning.stage_plan import plan_stage
    from chimed_lit.run.registry import stage_of
    from chimed_lit.run.stage_configs import stage_configs

    opts, as_json, rest, dirs = split_args(args)
    overrides = check_overrides(
        route_stage_prefixes(rest, config_dirs=dirs), "fit", config_dirs=dirs
    )
    out = []
    for _, cfg in stage_configs(overrides, config_dirs=dirs):
        fields = config_dict(cfg.model)
        lm, rm = measure(fields, "causal_lm"), measure(fields, "reward")
        setup = stage_of(cfg).plan_setup(cfg)
        plan = plan_stage(setup, lm, rm)
        out.append(
            (
                plan,
                advise(
                    setup, lambda st, lm=lm, rm=rm: plan_stage(st, lm, rm).peak, opts.budget_bytes
                ),
            )
        )
    return out, opts, as_json


def plan_command(args: list[str]) -> int:
    """Print the plan; exit 0 whether or not it fits (the verdict is in the output)."""
    from chimed_lit.planning.report import stage_json, stage_text

    plans, opts, as_json = build_plans(args)
    if as_json:
        print(
            json.dumps(
                {
                    "gpu_memory_gib": opts.gpu_memory_gib,
                    "reserve_gib": opts.reserve_gib,
                    "stages": [stage_json(p, a) for p, a in plans],
                },
                indent=2,
            )
        )
        return 0
    print(
        f"memory plan per GPU: {opts.gpu_memory_gib:g} GiB GPUs, {opts.reserve_gib:g} GiB kept "
        "free (plan.gpu_memory_gib, plan.reserve_gib); GiB = 2^30 bytes"
    )
    for plan, advice in plans:
        print()
        print(stage_text(plan, advice))
    return 0
