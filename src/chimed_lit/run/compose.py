"""Composing a stage's config the way `chimed-lit fit` does, for upstream stages and for stages
that build another stage of their own (rejection sampling's SFT rounds).

Precedence, lowest first: the stage's YAML, run-wide overrides (`strategy=...`), the stage's
`stage_overrides.<name>` entry (from a recipe or a `<name>.key=value` argument), and, for the
target, the command line's own overrides.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from hydra import compose, initialize_config_module, version
from hydra.core.config_search_path import SearchPathQuery
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf, open_dict

from chimed_lit.io.errors import ConfigError
from chimed_lit.run.fingerprints import flatten
from chimed_lit.run.run_wide import (
    INNER_STAGE_TRAINER_KEYS,
    RUN_WIDE_NODES,
    is_run_wide,
    override_key,
)

CONFIG_MODULE = "chimed_lit.configs"  # the package every command composes from


@contextmanager
def composing(config_dirs: Sequence[str] = (), job_name: str = "app") -> Iterator[None]:
    """Hydra's compose API over the shipped configs plus `config_dirs` (what `--config-dir DIR`
    adds to a command: a folder holding e.g. `stage/<name>.yaml` of a stage kept outside the
    package), searched after the shipped ones exactly as `hydra.main` searches them."""
    missing = [d for d in config_dirs if not Path(d).expanduser().is_dir()]
    if missing:
        raise ConfigError([f"--config-dir {d}: no such folder" for d in missing])
    GlobalHydra.instance().clear()
    try:
        if not config_dirs:
            with initialize_config_module(CONFIG_MODULE, version_base="1.3", job_name=job_name):
                yield
            return
        # as hydra.main does for --config-dir (hydra._internal.utils._run_hydra): Hydra has no
        # public way to add a search dir to the compose API
        from hydra._internal.hydra import Hydra
        from hydra._internal.utils import create_config_search_path

        version.setbase("1.3")
        search = create_config_search_path(f"pkg://{CONFIG_MODULE}")
        for folder in config_dirs:
            search.prepend(
                provider="command-line",
                path=f"file://{Path(folder).expanduser().resolve()}",
                anchor=SearchPathQuery(provider="schema"),
            )
        Hydra.create_main_hydra2(task_name=job_name, config_search_path=search)
        yield
    finally:
        GlobalHydra.instance().clear()


def compose_stage(
    name: str, task_overrides: list[str], output_dir: str, own: bool = False
) -> DictConfig:
    """The config of stage `name` within the running Hydra app (`own`: of the target stage
    itself, which keeps all the command line's overrides)."""
    base = [f"stage={name}", f"paths.output_dir={output_dir}"]
    per_stage = [o for o in task_overrides if override_key(o).startswith("stage_overrides.")]
    wide = [o for o in task_overrides if is_run_wide(o) and override_key(o) != "paths.output_dir"]
    rest = [
        o
        for o in task_overrides
        if own
        and o not in per_stage
        and o not in wide
        and override_key(o) not in ("stage", "paths.output_dir")
    ]
    cfg = compose(config_name="fit", overrides=base + wide + per_stage + rest)
    flat = as_overrides(cfg.stage_overrides.get(name))
    if not flat:
        return cfg
    return compose(config_name="fit", overrides=base + wide + per_stage + flat + rest)


def as_overrides(node: DictConfig | None, prefix: str = "") -> list[str]:
    """A config node as `key=value` overrides, one per leaf (`prefix` before each key)."""
    if node is None:
        return []
    leaves = flatten(OmegaConf.to_container(node, resolve=True)).items()
    return [f"{prefix}{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in leaves]


def compose_sibling(
    cfg: DictConfig, name: str, output_dir: str, task_overrides: list[str]
) -> DictConfig:
    """Stage `name`'s config as this run composes it, writing under `output_dir`, with the
    run-wide pieces and the trainer's hardware keys of `cfg` (the stage asking), so it runs with
    the model settings, loggers and devices of the stage it is part of, also when no Hydra app
    is running (a script or a test: then from the stage YAML alone)."""
    # the asking config's `stage_overrides.<name>` is the truth (a test or a script may have set
    # it in code): as overrides, so a group choice (`sft.data=cmd_sft`) picks that group's file
    own = as_overrides((cfg.get("stage_overrides") or {}).get(name), f"++stage_overrides.{name}.")
    if GlobalHydra.instance().is_initialized():
        out = compose_stage(name, [*task_overrides, *own], output_dir)
    else:
        with composing():
            out = compose_stage(name, own, output_dir)
    with open_dict(out):
        for key in RUN_WIDE_NODES:
            if key in cfg:
                out[key] = cfg[key]
        for key in INNER_STAGE_TRAINER_KEYS:
            if key in cfg.trainer:
                out.trainer[key] = cfg.trainer[key]
        out.paths.output_dir = output_dir  # the one run-wide path that is its own
    return out
