"""Checking command-line overrides against the composed config before anything is built.

Hydra stops at the first bad override with a stack trace; users want every problem at once,
in words: unknown keys (with a suggestion), unknown group options, values of the wrong type.
"""

from __future__ import annotations

import difflib
from typing import Any

from omegaconf import DictConfig, OmegaConf

from chimed_lit.io.errors import ConfigError
from chimed_lit.run.compose import CONFIG_MODULE  # noqa: F401  (re-exported for the commands)


def group_options(group: str) -> list[str]:
    from hydra.core.global_hydra import GlobalHydra

    return sorted(GlobalHydra.instance().config_loader().get_group_options(group))


def config_groups() -> list[str]:
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.object_type import ObjectType

    loader = GlobalHydra.instance().config_loader()
    return sorted(
        g
        for g in loader.list_groups("")
        if g != "hydra" and loader.get_group_options(g, results_filter=ObjectType.CONFIG)
    )


def _node(cfg: DictConfig, key: str):
    """The config node at a dotted key (present even when its value is ??? or null), or None."""
    node = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig):
            return None
        try:  # `part in node` is False for ??? values; struct mode raises for unknown keys
            node = node._get_node(part)
        except Exception:
            return None
        if node is None:
            return None
    return node


def _default_groups(config_name: str) -> set[str]:
    """Groups named in a primary config's own defaults list."""
    from importlib.resources import files

    raw = OmegaConf.create((files(CONFIG_MODULE) / f"{config_name}.yaml").read_text())
    out = set()
    for entry in raw.get("defaults", []):
        if isinstance(entry, DictConfig):
            out.update(str(k).split("@")[0].lstrip("/").removeprefix("override ") for k in entry)
    return out


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or str(e.__cause__ or type(e).__name__).strip()
    return text.splitlines()[0]


def _values(ov: Any) -> list[Any]:
    if ov.is_sweep_override():
        return list(ov.sweep_iterator())
    return [ov.value()]


def _type_problem(key: str, old: Any, new: Any) -> str | None:
    if old is None or new is None or isinstance(old, str):
        return None
    if isinstance(new, str) and new.startswith("${"):
        return None
    kinds = [
        (bool, "true or false"),
        (int, "an integer"),
        (float, "a number"),
        (list, "a list like [a,b]"),
        (dict, "a mapping like {k: v}"),
    ]
    for kind, words in kinds:
        if isinstance(old, kind):
            ok = (
                isinstance(new, bool)
                if kind is bool
                else isinstance(new, kind) and not isinstance(new, bool)
                if kind is int
                else isinstance(new, (int, float)) and not isinstance(new, bool)
                if kind is float
                else isinstance(new, kind)
            )
            return None if ok else f"{key}={new!r}: expected {words} (the default is {old!r})"
    return None


def _suggest(cfg: DictConfig, key: str) -> str:
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if isinstance(node, DictConfig):
        close = difflib.get_close_matches(leaf, [str(k) for k in node.keys()], n=1)
        if close:
            return f" (did you mean '{parent + '.' if parent else ''}{close[0]}'?)"
    return ""


def _trainer_args() -> set[str]:
    import inspect

    from lightning.pytorch import Trainer

    return set(inspect.signature(Trainer.__init__).parameters) - {"self"}


def parse_overrides(overrides: list[str], problems: list[str]) -> list[tuple[str, Any]]:
    """Each override with Hydra's parse of it; unparseable ones go to `problems`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    parsed = []
    for text in overrides:
        try:
            parsed.append((text, parser.parse_overrides([text])[0]))
        except HydraException as e:
            problems.append(f"cannot parse {text!r}: {_first_line(e)}")
    return parsed


def check_overrides(overrides: list[str], config_name: str = "fit") -> list[str]:
    """Validate `overrides` for the primary config `config_name`; return them, with Lightning Trainer arguments that the
    YAML does not list turned into additions (`+trainer.x=v`). Raise one `ConfigError`."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    problems: list[str] = []
    parsed = parse_overrides(overrides, problems)
    GlobalHydra.instance().clear()
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        groups = set(config_groups()) if config_name == "fit" else _default_groups(config_name)
        choices = []
        for text, ov in parsed:
            key = ov.key_or_group
            if key in groups:
                opts = group_options(key)
                picked = [x for v in _values(ov) for x in (v if isinstance(v, list) else [v])]
                for v in picked:
                    if v is not None and str(v) not in opts:
                        problems.append(
                            f"{key}={v}: no such option; {key} is one of {', '.join(opts)}"
                        )
                if not ov.is_sweep_override():
                    choices.append(text)
        try:
            cfg = compose(
                config_name=config_name,
                overrides=[
                    c
                    for c in choices
                    if c.split("=")[0] in groups and not any(c.startswith(p[0]) for p in problems)
                ],
            )
        except HydraException as e:
            raise ConfigError(problems + [_first_line(e)]) from None
        out = []
        trainer_args: set[str] | None = None
        for text, ov in parsed:
            key = ov.key_or_group
            if (
                key in groups
                or key.startswith("hydra")
                or ov.is_add()
                or ov.is_delete()
                or (ov.package is not None)
                or key.startswith("stage_overrides")
            ):
                out.append(text)
                continue
            node = _node(cfg, key)
            if node is None:
                if key.startswith("trainer.") and key.count(".") == 1:
                    trainer_args = trainer_args if trainer_args is not None else _trainer_args()
                    if key.split(".", 1)[1] in trainer_args:
                        out.append("+" + text)
                        continue
                problems.append(f"unknown key '{key}'{_suggest(cfg, key)}")
                continue
            raw = node._value()
            if isinstance(raw, str) and "${" in raw:
                raw = None  # an interpolation: its type is decided elsewhere
            for v in _values(ov):
                if (msg := _type_problem(key, raw, v)) is not None:
                    problems.append(msg)
            out.append(text)
    GlobalHydra.instance().clear()
    if problems:
        raise ConfigError(problems)
    return out
