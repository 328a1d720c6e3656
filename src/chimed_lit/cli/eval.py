"""`chimed-lit eval`: evaluate a model, or every stage of a run, with the `chimed_lit.eval` library.

Overrides are checked before Hydra runs and before any model is loaded (`eval_config`, through
the one override checker); the
Hydra app over `configs/eval.yaml` then loads each model with plain transformers, runs the
tasks, writes `<eval.output_dir>/<task>.json` + `.md` (task=all: `<stage>/<task>.json` and one
comparison table `all.md` / `all.csv`, a row per stage; task=bias: see `eval_bias`) and prints
a short markdown table.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from chimed_lit.cli.argv import split_argv
from chimed_lit.cli.eval_config import (
    BUILTIN_SCALES,
    DATA_TASKS,
    MCQ_MODES,
    SCALE_MODES,
    check_eval_overrides,
    eval_problems,
    run_kwargs,
    task_files,
)
from chimed_lit.cli.eval_models import free_memory, load_model, stage_models
from chimed_lit.eval.api import headline, library_call
from chimed_lit.io.errors import CheckpointError, ChimedError, ConfigError
from chimed_lit.io.leftovers import remove_leftovers

SINGLE_PREFERENCE = ("rlhf", "dpo", "sft", "pretrain")  # model.pretrained=null for one task


def eval_command(args: list[str]) -> int:
    """Run `chimed-lit eval ARGS`; returns the exit code (errors printed without a traceback)."""
    import hydra
    from hydra.core.global_hydra import GlobalHydra

    line = split_argv(args)
    errors: list[ChimedError] = []

    def job(cfg: DictConfig) -> None:
        try:
            _job(cfg)
        except ChimedError as e:
            errors.append(e)

    saved = sys.argv
    try:
        overrides = check_eval_overrides(line.overrides, line.config_dirs)
        app = hydra.main(
            version_base="1.3", config_path="pkg://chimed_lit.configs", config_name="eval"
        )(job)
        sys.argv = ["chimed-lit eval", *line.argv(overrides)]
        app()
        if errors:
            raise errors[0]
    except ChimedError as e:
        print(f"chimed-lit: {e}", file=sys.stderr)
        return e.exit_code
    finally:
        sys.argv = saved
        GlobalHydra.instance().clear()
    return 0


def _job(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict
    from transformers import set_seed

    with open_dict(cfg):
        cfg.paths.output_dir = HydraConfig.get().runtime.output_dir
    problems = eval_problems(cfg)
    if problems:
        raise ConfigError(problems)
    remove_leftovers(cfg.eval.output_dir)  # half-written tables of a killed eval
    set_seed(cfg.seed)
    out = Path(cfg.eval.output_dir)
    if cfg.task == "all":
        _run_all(cfg, out)
        return
    if cfg.task == "bias":
        from chimed_lit.cli.eval_bias import run_bias

        run_bias(cfg, out)
        return
    jobs_for(cfg)  # settles the scale before any model is loaded
    source, name = _single_source(cfg)
    model, tok = load_model(source, cfg.model)
    result = run_job(cfg, cfg.task, model, tok)
    result["model"] = source
    path = _write(out, cfg.task, result)
    from chimed_lit.eval.report import comparison_table

    md, _ = comparison_table({name: headline(cfg.task, result)}, digits=4)
    print(md + f"\nwrote {path}")


# ----- models -----------------------------------------------------------------------------------


def _single_source(cfg: DictConfig) -> tuple[str, str]:
    if cfg.model.pretrained is not None:
        src = str(cfg.model.pretrained)
        return src, Path(src).parent.name if Path(src).name == "hf" else src
    found = dict(stage_models(cfg.paths.output_dir))
    for stage in (*SINGLE_PREFERENCE, *found):
        if stage in found:
            print(f"chimed-lit: evaluating stage {stage} ({found[stage]})", file=sys.stderr)
            return str(found[stage]), stage
    raise CheckpointError(
        f"no stage with an hf/ model under {cfg.paths.output_dir}; "
        "set model.pretrained=DIR_OR_HUB_ID or paths.output_dir=<a run dir>"
    )


# ----- running tasks ----------------------------------------------------------------------------


def scale_instrument(cfg: DictConfig) -> str:
    """The scale to run: the task's built-in key, `eval.instrument`, the built-in matching
    `eval.items_file`'s item count, or demo."""
    if cfg.task in BUILTIN_SCALES:
        return cfg.task
    if cfg.eval.instrument is not None:
        return str(cfg.eval.instrument)
    if cfg.eval.items_file is None:
        return "demo"
    from chimed_lit.eval.instruments import read_items_file

    n = len(library_call(read_items_file, cfg.eval.items_file))
    by_count = {40: "cami", 16: "mica"}
    if n not in by_count:
        raise ConfigError(
            f"eval.items_file has {n} items: CAMI has 40, MICA 16; name the scale "
            "with eval.instrument=cami|mica|<instrument.yaml>"
        )
    return by_count[n]


def jobs_for(cfg: DictConfig) -> list[str]:
    """The tasks `cfg` runs per model: the task itself, or (all) each task with data + a scale."""
    if cfg.task != "all":
        return [cfg.task]
    inst = scale_instrument(cfg)
    return [t for t in DATA_TASKS if task_files(cfg, t)] + [
        inst if inst in BUILTIN_SCALES else "scale"
    ]


def _fewshot_for(cfg: DictConfig, task: str) -> str | None:
    f = cfg.eval.fewshot_file
    if f is None or cfg.eval.k_shot <= 0 or task not in ("ner", "mcq"):
        return None
    if cfg.task == "all":
        from chimed_lit.eval.formats import FORMATS, detect_format

        if FORMATS[library_call(detect_format, f)][0] != task:
            return None
    return str(f)


def run_job(cfg: DictConfig, task: str, model: Any, tokenizer: Any) -> dict[str, Any]:
    """One library task (`ner`, `mcq`, `dialogue`, `scale`, `cami`, `mica`) on one model."""
    from chimed_lit.eval.tasks import run_eval

    e = cfg.eval
    allowed = MCQ_MODES if task == "mcq" else SCALE_MODES if task not in DATA_TASKS else ()
    kw = run_kwargs(cfg, tokenizer, allowed)
    if task in DATA_TASKS:
        return library_call(
            run_eval,
            task,
            model,
            tokenizer,
            files=task_files(cfg, task),
            fmt=cfg.data.format,
            fewshot_file=_fewshot_for(cfg, task),
            k_shot=e.k_shot,
            **kw,
        )
    inst = scale_instrument(cfg)
    items = e.items_file if inst in BUILTIN_SCALES else None
    result = library_call(
        run_eval, "scale", model, tokenizer, instrument=inst, items_file=items, **kw
    )
    result["instrument"] = inst
    return result


def _write(out: Path, task: str, result: dict[str, Any]) -> Path:
    from chimed_lit.eval.report import write_task_result

    return write_task_result(out, task, result)


def _run_all(cfg: DictConfig, out: Path) -> None:
    from tqdm.auto import tqdm

    from chimed_lit.eval.report import write_comparison

    if cfg.model.pretrained is not None:
        src = str(cfg.model.pretrained)
        models = [(Path(src).parent.name if Path(src).name == "hf" else Path(src).name, src)]
    else:
        models = [(s, str(p)) for s, p in stage_models(cfg.paths.output_dir)]
        if not models:
            raise CheckpointError(
                f"task=all found no stage with an hf/ model under "
                f"{cfg.paths.output_dir}; set paths.output_dir=<a run dir> "
                "or model.pretrained=DIR_OR_HUB_ID"
            )
    jobs = jobs_for(cfg)
    rows: dict[str, dict[str, Any]] = {}
    bar = tqdm(total=len(models) * len(jobs), disable=not cfg.eval.progress, desc="eval")
    for stage, source in models:
        model, tok = load_model(source, cfg.model)
        rows[stage] = {}
        for task in jobs:
            bar.set_postfix_str(f"{stage}/{task}")
            result = run_job(cfg, task, model, tok)
            result["model"] = source
            _write(out / stage, task, result)
            rows[stage].update(headline(task, result))
            bar.update()
        del model
        free_memory()
    bar.close()
    md_path, csv_path = write_comparison(rows, out, "all", digits=4, row_header="stage")
    print(md_path.read_text(encoding="utf-8") + f"\nwrote {md_path} and {csv_path}")
