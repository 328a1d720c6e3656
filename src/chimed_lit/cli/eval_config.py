"""Checking `chimed-lit eval` overrides and values before any model is loaded.

The overrides go through the one override checker (`cli.overrides`: unknown keys with a
suggestion, unknown group options, wrong types); `eval_problems` checks the composed eval
config's values and combinations. Every problem is reported at once, as one `ConfigError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from chimed_lit.cli.argv import Override
from chimed_lit.cli.overrides import check_overrides
from chimed_lit.io.redaction import credential_problems

TASKS = ("ner", "mcq", "dialogue", "cami", "mica", "scale", "all", "bias")
DATA_TASKS = ("ner", "mcq", "dialogue")
TEMPLATES = ("chimed", "ziya", "tokenizer")
DTYPES = ("float32", "fp32", "bfloat16", "bf16", "float16", "fp16")
MCQ_MODES = ("letter", "option_text", "generate")
SCALE_MODES = ("logprob", "generate")
BUILTIN_SCALES = ("cami", "mica")
BIAS_ITEMS = {"cami": "cami_items", "mica": "mica_items"}  # task=bias: scale -> eval.<key>
WANDB_TARGETS = ("chimed_lit.io.loggers.wandb_logger", "lightning.pytorch.loggers.WandbLogger")


# ----- values of the composed eval config ----------------------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def as_list(value: Any) -> list[Any]:
    """A config list (or null, or one string) as a plain list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(OmegaConf.to_container(value) if OmegaConf.is_config(value) else value)


def task_files(cfg: DictConfig, task: str) -> list[str]:
    """The data files of `task`: `data.files` for a single task, else `data.<task>_files`."""
    if cfg.task == task and as_list(cfg.data.files):
        return [str(f) for f in as_list(cfg.data.files)]
    return [str(f) for f in as_list(cfg.data.get(f"{task}_files"))]


def _file_problems(key: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, (list, str)) and not OmegaConf.is_list(value):
        return [f"{key}={value!r}: expected a list of file paths like [a.json,b.csv]"]
    out = []
    for f in as_list(value):
        if not isinstance(f, str):
            out.append(f"{key}: {f!r} is not a file path")
        elif not Path(f).expanduser().is_file():
            out.append(f"{key}: no such file {f!r}")
    return out


def _eval_value_problems(e: DictConfig) -> list[str]:
    p: list[str] = []
    for key, low in (("limit", 1), ("max_new_tokens", 1)):
        v = e.get(key)
        if v is not None and not (_is_int(v) and v >= low):
            p.append(f"eval.{key}={v!r}: expected a positive integer or null")
    if not (_is_int(e.batch_size) and e.batch_size >= 1):
        p.append(f"eval.batch_size={e.batch_size!r}: expected a positive integer")
    if not (_is_int(e.k_shot) and e.k_shot >= 0):
        p.append(f"eval.k_shot={e.k_shot!r}: expected an integer >= 0")
    elif e.k_shot > 0 and e.fewshot_file is None:
        p.append(f"eval.k_shot={e.k_shot} needs eval.fewshot_file (the exemplars)")
    for key in ("fewshot_file", "items_file", *BIAS_ITEMS.values()):
        v = e.get(key)
        if v is not None and not (isinstance(v, str) and Path(v).expanduser().is_file()):
            p.append(f"eval.{key}: no such file {v!r}")
    if e.template not in TEMPLATES:
        p.append(f"eval.template={e.template!r}: expected one of {', '.join(TEMPLATES)}")
    modes = e.modes
    if modes is not None:
        if isinstance(modes, str):
            p.append(f"eval.modes={modes!r}: expected a list like [letter] or [logprob]")
        else:
            bad = [m for m in as_list(modes) if m not in (*MCQ_MODES, *SCALE_MODES)]
            if bad:
                p.append(
                    f"eval.modes: unknown mode(s) {bad}; mcq: {', '.join(MCQ_MODES)}; "
                    f"scales: {', '.join(SCALE_MODES)}"
                )
    return p


def _task_problems(cfg: DictConfig) -> list[str]:
    p: list[str] = []
    task, e = cfg.task, cfg.eval
    inst = e.instrument
    if inst is not None and not (
        isinstance(inst, str)
        and (inst.lower() in ("demo", *BUILTIN_SCALES) or Path(inst).expanduser().is_file())
    ):
        p.append(f"eval.instrument={inst!r}: expected demo, cami, mica or an instrument YAML file")
    if task in BUILTIN_SCALES:
        if inst is not None and str(inst).lower() != task:
            p.append(f"task={task} uses the built-in {task} key; leave eval.instrument null")
        if e.items_file is None:
            p.append(
                f"task={task} needs eval.items_file: the item texts are not shipped "
                "(their authors hold them); one item per line, in the key's order"
            )
    if task in ("scale", "all") and str(inst).lower() in BUILTIN_SCALES and e.items_file is None:
        p.append(f"eval.instrument={inst} needs eval.items_file (the item texts are not shipped)")
    if task in DATA_TASKS and not task_files(cfg, task):
        p.append(
            f"task={task} needs data: set data.files=[path,...] "
            f"(or data.{task}_files); no evaluation data is shipped"
        )
    if task not in DATA_TASKS and as_list(cfg.data.files):
        p.append(
            f"data.files is for task=ner|mcq|dialogue; with task={task} use "
            "data.ner_files, data.mcq_files, data.dialogue_files"
        )
    fmt = cfg.data.format
    if fmt is not None:
        from chimed_lit.eval.formats import FORMATS

        if fmt not in FORMATS:
            p.append(f"data.format={fmt!r}: expected null or one of {', '.join(sorted(FORMATS))}")
        elif task not in DATA_TASKS:
            p.append(f"data.format applies to one task; leave it null with task={task}")
        elif FORMATS[fmt][0] != task:
            p.append(f"data.format={fmt} is a {FORMATS[fmt][0]} format, not {task}")
    modes = as_list(e.modes)
    if modes and task == "mcq" and not set(modes) <= set(MCQ_MODES):
        p.append(f"eval.modes for task=mcq: choose from {', '.join(MCQ_MODES)}")
    if modes and task in ("scale", "bias", *BUILTIN_SCALES) and not set(modes) <= set(SCALE_MODES):
        p.append(f"eval.modes for task={task}: choose from {', '.join(SCALE_MODES)}")
    return p + _bias_problems(cfg)


def bias_items(cfg: DictConfig) -> dict[str, str]:
    """task=bias: {scale: items file} for each of eval.cami_items / eval.mica_items given."""
    return {s: str(cfg.eval[k]) for s, k in BIAS_ITEMS.items() if cfg.eval.get(k) is not None}


def _bias_problems(cfg: DictConfig) -> list[str]:
    """task=bias keys, and the keys only task=bias reads."""
    p: list[str] = []
    task, e = cfg.task, cfg.eval
    models = e.get("models")
    loggers = [str(k) for k, v in (cfg.get("logger") or {}).items() if v is not None]
    if task != "bias":
        p += [
            f"eval.{k} is for task=bias (task=cami|mica read eval.items_file)"
            for k in BIAS_ITEMS.values()
            if e.get(k) is not None
        ]
        if as_list(models):
            p.append("eval.models is for task=bias; for one model set model.pretrained")
        if loggers:
            p.append(
                f"logger={','.join(loggers)} is for task=bias (its chart and table); "
                "other tasks write files only"
            )
        return p
    if not bias_items(cfg):
        p.append(
            "task=bias needs eval.cami_items=FILE and/or eval.mica_items=FILE: the item texts "
            "are not shipped (their authors hold them); one item per line, in the "
            "questionnaire's order (CAMI 40, MICA 16)"
        )
    if e.items_file is not None or e.instrument is not None:
        p.append(
            "task=bias reads eval.cami_items and eval.mica_items; "
            "leave eval.items_file and eval.instrument null"
        )
    if models is not None and not OmegaConf.is_list(models) and not isinstance(models, list):
        p.append(f"eval.models={models!r}: expected a list like [runs/a/sft/hf,runs/a/rlhf/hf]")
    else:
        names = as_list(models)
        p += [
            f"eval.models: {m!r} is not a model dir or Hub id"
            for m in names
            if not (isinstance(m, str) and m.strip())
        ]
        twice = sorted({str(m) for m in names if names.count(m) > 1})
        if twice:
            p.append(f"eval.models lists {', '.join(twice)} more than once")
        if names and cfg.model.pretrained is not None:
            p.append("task=bias: set eval.models=[...] or model.pretrained, not both")
    for name in loggers:
        p += credential_problems(cfg.logger[name] or {}, f"logger.{name}")
        target = str((cfg.logger[name] or {}).get("_target_", ""))
        if target not in WANDB_TARGETS:
            p.append(
                f"logger={name}: eval logs its chart and table to W&B only "
                "(logger=wandb); the CSV table is written anyway"
            )
    return p


def eval_problems(cfg: DictConfig) -> list[str]:
    """Every problem of a composed eval config's values (empty when it can run)."""
    p: list[str] = []
    if cfg.task not in TASKS:
        p.append(f"task={cfg.task!r}: expected one of {', '.join(TASKS)}")
    m = cfg.model
    if m.pretrained is not None and not isinstance(m.pretrained, str):
        p.append(f"model.pretrained={m.pretrained!r}: expected a directory or a Hub id")
    if m.dtype not in DTYPES:
        p.append(f"model.dtype={m.dtype!r}: expected one of {', '.join(DTYPES)}")
    dev = str(m.device)
    if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
        p.append(f"model.device={m.device!r}: expected auto, cpu, cuda or cuda:N")
    for key in ("files", "ner_files", "mcq_files", "dialogue_files"):
        p += _file_problems(f"data.{key}", cfg.data.get(key))
    p += _eval_value_problems(cfg.eval)
    if cfg.task in TASKS:
        p += _task_problems(cfg)
    return p


def check_eval_overrides(
    overrides: list[Override] | list[str], config_dirs: Sequence[str] = ()
) -> list[str]:
    """The override checker over `eval.yaml` (plus a `--config-dir`), with the eval value
    checks."""
    return check_overrides(overrides, "eval", validate=eval_problems, config_dirs=config_dirs)


def run_kwargs(
    cfg: DictConfig, tokenizer: Any, allowed_modes: Sequence[str] = ()
) -> dict[str, Any]:
    """The library's keyword arguments every task takes from `eval.*`, with `eval.modes` kept to
    those in `allowed_modes` (none when the task has no modes)."""
    from chimed_lit.eval.api import make_render

    e = cfg.eval
    kw: dict[str, Any] = {
        "batch_size": e.batch_size,
        "limit": e.limit,
        "progress": e.progress,
        "render": make_render(e.template, tokenizer),
    }
    if e.max_new_tokens is not None:
        kw["max_new_tokens"] = e.max_new_tokens
    modes = [m for m in as_list(e.modes) if m in allowed_modes]
    if modes:
        kw["modes"] = modes
    return kw
