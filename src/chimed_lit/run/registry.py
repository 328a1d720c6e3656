"""The stage registry: every stage the `fit` command knows, declared once.

(Starter: the stage names come from `configs/stage/*.yaml`; the registry proper, one module per
stage under `chimed_lit.stages`, is built on this.)
"""

from __future__ import annotations

from importlib.resources import files

from chimed_lit.run.compose import CONFIG_MODULE


def stage_names() -> tuple[str, ...]:
    """The stages `stage=` accepts, from the shipped `configs/stage/` group."""
    folder = files(CONFIG_MODULE).joinpath("stage")
    return tuple(
        sorted(
            p.name[: -len(".yaml")]
            for p in folder.iterdir()
            if p.name.endswith(".yaml") and not p.name.startswith("_")
        )
    )
