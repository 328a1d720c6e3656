"""The stages a plan covers, each composed as `chimed-lit fit` composes it.

The target is `stage=` (default rlhf: the whole regime); the stages it needs come first, each
composed by `pipeline.compose_stage` (its own stage config, the run-wide overrides and its
`stage_overrides`). The target gets its `stage_overrides.<target>` too, under the command
line's own overrides, so a recipe's per-stage values hold for whichever stage is the target.
"""

from __future__ import annotations

import json

from omegaconf import DictConfig, OmegaConf

from chimed_lit.errors import ConfigError

DEFAULT_TARGET = "rlhf"


def _key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0]


def compose_target(overrides: list[str]) -> DictConfig:
    """The target stage's config: fit.yaml + overrides + its stage_overrides (overrides win)."""
    from hydra import compose

    from chimed_lit.pipeline import _flatten

    cfg = compose(config_name="fit", overrides=overrides)
    extra = cfg.stage_overrides.get(cfg.stage.name)
    if extra is None:
        return cfg
    given = {_key(o) for o in overrides}
    flat = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}"
            for k, v in _flatten(OmegaConf.to_container(extra, resolve=True)) if k not in given]
    return compose(config_name="fit", overrides=flat + overrides) if flat else cfg


def stage_configs(overrides: list[str]) -> list[tuple[str, DictConfig]]:
    """(stage, composed config) upstream first, ending with the target; every `???` value
    (a preset's required path, say) is an error naming the stage and the key."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from chimed_lit.config_check import CONFIG_MODULE
    from chimed_lit.pipeline import compose_stage, direct_needs

    cli_pretrained = any(o.lstrip("+").startswith("model.pretrained=") for o in overrides)
    order: list[tuple[str, DictConfig]] = []
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
            target = compose_target(overrides)

            def visit(name: str, cfg: DictConfig, is_target: bool) -> None:
                for need in direct_needs(cfg, cli_pretrained and is_target):
                    if need not in (n for n, _ in order):
                        visit(need, compose_stage(need, overrides, cfg.paths.output_dir), False)
                order.append((name, cfg))

            visit(str(target.stage.name), target, True)
    finally:
        GlobalHydra.instance().clear()
    last = order[-1][0]
    problems = [f"{k} is required for the {name} stage (set {'' if name == last else name + '.'}"
                f"{k}=... on the command line)"
                for name, cfg in order for k in sorted(OmegaConf.missing_keys(cfg))]
    if problems:
        raise ConfigError(problems)
    return order
