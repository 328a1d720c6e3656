"""Checking `chimed-lit eval` overrides and values before any model is loaded.

`check_overrides_for` is the config-agnostic form of `config_check.check_overrides` (unknown keys
with a suggestion, unknown group options, wrong types); `eval_problems` checks the composed eval
config's values and combinations. Every problem is reported at once, as one `ConfigError`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from chimed_lit.cli.overrides import (
    CONFIG_MODULE,
    _first_line,
    _type_problem,
    _values,
    group_options,
    parse_overrides,
)
from chimed_lit.io.errors import ConfigError

TASKS = ("ner", "mcq", "dialogue", "cami", "mica", "scale", "all")
DATA_TASKS = ("ner", "mcq", "dialogue")
TEMPLATES = ("chimed", "ziya", "tokenizer")
DTYPES = ("float32", "fp32", "bfloat16", "bf16", "float16", "fp16")
MCQ_MODES = ("letter", "option_text", "generate")
SCALE_MODES = ("logprob", "generate")
BUILTIN_SCALES = ("cami", "mica")


def check_overrides_for(
    config_name: str,
    overrides: list[str],
    validate: Callable[[DictConfig], list[str]] | None = None,
) -> list[str]:
    """Validate `overrides` against primary config `config_name`; then, when they compose,
    run `validate(cfg)` on the result. Return the overrides; raise one `ConfigError`."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    problems: list[str] = []
    parsed = parse_overrides(overrides, problems)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
            base = compose(config_name=config_name, return_hydra_config=True)
            groups = {str(g) for g in base.hydra.runtime.choices if not str(g).startswith("hydra")}
            good: list[str] = []
            for text, ov in parsed:
                before = len(problems)
                _check_one(base, groups, text, ov, problems)
                if len(problems) == before and not ov.is_sweep_override():
                    good.append(text)
            if validate is not None:
                try:
                    cfg = compose(config_name=config_name, overrides=good)
                except HydraException as e:
                    problems.append(_first_line(e))
                else:
                    try:
                        problems += [p for p in validate(cfg) if p not in problems]
                    except OmegaConfBaseException as e:  # e.g. a required key deleted with ~
                        problems.append(f"cannot check the values: {_first_line(e)}")
    finally:
        GlobalHydra.instance().clear()
    if problems:
        raise ConfigError(problems)
    return overrides


def _check_one(cfg: DictConfig, groups: set[str], text: str, ov: Any, problems: list[str]) -> None:
    key = ov.key_or_group
    if key in groups:
        opts = group_options(key)
        for v in _values(ov):
            if v is not None and str(v) not in opts:
                problems.append(f"{key}={v}: no such option; {key} is one of {', '.join(opts)}")
        return
    if key.startswith("hydra") or ov.is_add() or ov.is_delete() or ov.package is not None:
        return
    node = OmegaConf.select(cfg, key, default="__absent__", throw_on_resolution_failure=False)
    if isinstance(node, str) and node == "__absent__":
        problems.append(f"unknown key '{key}'{suggest_key(cfg, key)}")
        return
    parent, _, leaf = key.rpartition(".")
    container = OmegaConf.select(cfg, parent) if parent else cfg
    raw = container._get_node(leaf)._value() if isinstance(container, DictConfig) else node
    if isinstance(raw, str) and "${" in raw:
        return  # an interpolation: its type is decided elsewhere
    for v in _values(ov):
        if (msg := _type_problem(key, raw, v)) is not None:
            problems.append(msg)


def suggest_key(cfg: DictConfig, key: str) -> str:
    """' (did you mean 'a.b'?)' with the first unknown segment of `key` replaced by the
    closest existing key at that level (the rest kept), or ''."""
    import difflib

    parts, node = key.split("."), cfg
    for i, part in enumerate(parts):
        if not isinstance(node, DictConfig):
            return ""
        if part not in node:
            close = difflib.get_close_matches(part, [str(k) for k in node.keys()], n=1)
            if not close:
                return ""
            guess = ".".join([*parts[:i], close[0], *parts[i + 1 :]])
            return f" (did you mean '{guess}'?)"
        node = node._get_node(part)
    return ""


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
    for key in ("fewshot_file", "items_file"):
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
    if modes and task in ("scale", *BUILTIN_SCALES) and not set(modes) <= set(SCALE_MODES):
        p.append(f"eval.modes for task={task}: choose from {', '.join(SCALE_MODES)}")
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


def check_eval_overrides(overrides: list[str]) -> list[str]:
    """`check_overrides_for("eval", ...)` with the eval value checks."""
    return check_overrides_for("eval", overrides, validate=eval_problems)
