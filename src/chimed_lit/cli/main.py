"""The `chimed-lit` command: a thin layer over Hydra.

It checks every override before Hydra composes anything (all problems at once, no stack trace),
turns `<stage>.key=value` into per-stage overrides, and hands the rest to a Hydra app, so
`-m` multirun, launchers, `--cfg job` and tab completion behave as Hydra users expect.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from chimed_lit.io.errors import ChimedError

log = logging.getLogger("chimed_lit")


USAGE = """usage: chimed-lit <command> [key=value ...] [-m] [--cfg job] [--help]

commands:
  fit       train a stage of the ChiMed-GPT regime, after the stages it needs
            chimed-lit fit stage=sft trainer.max_steps=200 paths.output_dir=runs/a
  generate  batched replies for a JSONL of prompts, on any HF model dir
            chimed-lit generate model.pretrained=runs/a/sft/hf input=prompts.jsonl
  eval      evaluate a model, or every stage of a run, and write a table
            chimed-lit eval task=all paths.output_dir=runs/a data.mcq_files=[exam.csv]
  chat      talk to a model in the terminal (streamed, multi-turn)
            chimed-lit chat model.pretrained=runs/a/sft/hf
  plan      GPU memory per stage (ZeRO options, activations, KV cache), no weights needed
            chimed-lit plan experiment=chimed_gpt_13b plan.gpu_memory_gib=80 [--json]

config groups (pick one with group=option; `chimed-lit fit --cfg job` prints the result):
{groups}

common keys:
  paths.output_dir=DIR      where the run writes; each stage in DIR/<stage>/
  seed=N                    seeds every RNG
  resume=true               continue from the newest checkpoint in DIR
  checkpoint.every_n_steps=K
  trainer.<arg>=V           any Lightning Trainer argument (max_steps, devices, precision ...)
  data.train_files=[a.jsonl,b.txt]  data.val_files=[...]  data.on_bad_record=skip
  model.pretrained=ID_OR_DIR  any Hugging Face causal LM instead of the tiny default
  <stage>.key=value         override an upstream stage, e.g. pretrain.trainer.max_steps=50

multirun: chimed-lit fit -m stage=pretrain optimizer.lr=1e-3,3e-3 (one dir and W&B run per job,
          plus DIR/sweeps/<time>/sweep_summary.csv)
"""


def _groups_text() -> str:
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from chimed_lit.cli.overrides import CONFIG_MODULE, config_groups, group_options

    GlobalHydra.instance().clear()
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        lines = [f"  {g:<11} {', '.join(group_options(g))}" for g in config_groups()]
    GlobalHydra.instance().clear()
    return "\n".join(lines)


def _route_stage_prefixes(overrides: list[str]) -> list[str]:
    """`sft.x=v` -> `x=v` when sft is the target stage, else `++stage_overrides.sft.x=v` (also
    for the target when x is run-wide, such as `strategy`: it must not reach the other stages)."""
    from chimed_lit.run.registry import stage_names
    from chimed_lit.run.run_wide import is_run_wide

    target = "pretrain"
    for o in overrides:
        if o.startswith("stage="):
            target = o.split("=", 1)[1]
    out = []
    for o in overrides:
        key = o.lstrip("+~").split("=", 1)[0]
        head, dot, rest = key.partition(".")
        if head in stage_names() and dot:
            if head == target and not is_run_wide(rest):
                out.append(o.replace(f"{head}.", "", 1))
            else:
                # ++: a recipe may already set that stage's key
                out.append(f"++stage_overrides.{key}={o.split('=', 1)[1]}")
        else:
            out.append(o)
    return out


def _task(cfg) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict

    from chimed_lit.run.pipeline import run_pipeline

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    with open_dict(cfg):
        cfg.paths.output_dir = hc.runtime.output_dir
    try:
        run_pipeline(
            cfg,
            list(hc.overrides.task),
            run_name=f"{Path(hc.sweep.dir).name}-{hc.job.num}-" if multirun else None,
            group=Path(hc.sweep.dir).name if multirun else None,
        )
    except ChimedError as e:
        print(f"chimed-lit: {e}", file=sys.stderr)
        sys.exit(e.exit_code)


def _fit(args: list[str]) -> int:
    import hydra

    from chimed_lit.cli.overrides import check_overrides

    flags = [a for a in args if a.startswith("-")]
    overrides = [a for a in args if not a.startswith("-")]
    # Hydra flags that take a value (--cfg job, --package x, --config-name y)
    for flag in (
        "--cfg",
        "-c",
        "--package",
        "-p",
        "--config-name",
        "-cn",
        "--config-dir",
        "-cd",
        "--info",
        "-i",
    ):
        if flag in args:
            i = args.index(flag)
            if i + 1 < len(args) and not args[i + 1].startswith("-") and "=" not in args[i + 1]:
                flags.insert(flags.index(flag) + 1, args[i + 1])
                overrides.remove(args[i + 1])
    overrides = check_overrides(_route_stage_prefixes(overrides))
    app = hydra.main(version_base="1.3", config_path="pkg://chimed_lit.configs", config_name="fit")(
        _task
    )
    saved = sys.argv
    # argv[0] is what Lightning re-runs for the other ranks of a multi-process job (DDP, FSDP2,
    # DeepSpeed on one node): this file, which takes bare overrides as `fit` in such a child
    sys.argv = [str(Path(__file__).resolve()), *flags, *overrides]
    try:
        app()
    finally:
        sys.argv = saved
    return 0


def _launched_rank() -> bool:
    """True in a rank Lightning started itself (it re-runs argv without the command word)."""
    import os

    return os.environ.get("LOCAL_RANK", "0") not in ("", "0")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE.format(groups=_groups_text()))
        return 0
    command, rest = args[0], args[1:]
    if "=" in command and _launched_rank():
        command, rest = "fit", args
    try:
        if command == "fit":
            return _fit(rest)
        if command == "eval":
            from chimed_lit.cli.eval import eval_command

            return eval_command(rest)
        if command == "plan":
            from chimed_lit.cli.plan import plan_command

            return plan_command(rest)
        if command in ("generate", "chat"):
            from chimed_lit.cli.infer import chat_command, generate_command

            return (generate_command if command == "generate" else chat_command)(rest)
        print(f"chimed-lit: unknown command {command!r}; run `chimed-lit --help`", file=sys.stderr)
        return 2
    except ChimedError as e:
        print(f"chimed-lit: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
