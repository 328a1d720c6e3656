"""The `chimed-lit` command: a thin layer over Hydra.

It checks every override before Hydra composes anything (all problems at once, no stack trace),
turns `<stage>.key=value` into per-stage overrides, and hands the rest to a Hydra app, so
`-m` multirun, launchers, `--cfg job` and tab completion behave as Hydra users expect.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from chimed_lit.io import signals
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
            chimed-lit eval task=bias paths.output_dir=runs/a eval.cami_items=cami.txt eval.mica_items=mica.txt
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
    from chimed_lit.cli.overrides import config_groups, group_options
    from chimed_lit.run.compose import composing

    with composing():
        lines = [f"  {g:<11} {', '.join(group_options(g))}" for g in config_groups()]
    return "\n".join(lines)


def _task(cfg) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict

    from chimed_lit.io.redaction import refuse_credentials
    from chimed_lit.run.pipeline import run_pipeline

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    with open_dict(cfg):
        cfg.paths.output_dir = hc.runtime.output_dir
    try:
        # a credential in a logger's fields stops the run before any model loads (the runner
        # checks every stage's loggers again)
        for name, spec in (cfg.get("logger") or {}).items():
            if spec is not None:
                refuse_credentials(spec, f"logger.{name}")
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

    from chimed_lit.cli.argv import split_argv
    from chimed_lit.cli.overrides import check_overrides

    line = split_argv(args, stages=True)
    from chimed_lit.run.preflight import output_dir_problems  # Hydra creates the dir first

    overrides = check_overrides(
        line.overrides, "fit", validate=output_dir_problems, config_dirs=line.config_dirs
    )
    app = hydra.main(version_base="1.3", config_path="pkg://chimed_lit.configs", config_name="fit")(
        _task
    )
    saved = sys.argv
    # argv[0] is what Lightning re-runs for the other ranks of a multi-process job (DDP, FSDP2,
    # DeepSpeed on one node): this file, which takes bare overrides as `fit` in such a child
    sys.argv = [str(Path(__file__).resolve()), *line.argv(overrides)]
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
    if ("=" in command or command.startswith("-")) and _launched_rank():
        command, rest = "fit", args
    # SIGTERM / SIGUSR1 -> exit 75, SIGINT -> exit 130, wherever they arrive (io/signals.py)
    with signals.handling(signals.RESUME_HINT if command == "fit" else signals.RERUN_HINT):
        try:
            return _command(command, rest)
        except signals.Stopped as e:
            print(f"chimed-lit: {e}", file=sys.stderr)
            return e.exit_code


def _command(command: str, rest: list[str]) -> int:
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
