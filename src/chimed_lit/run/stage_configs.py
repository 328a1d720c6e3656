"""The stages a plan covers, each composed as `chimed-lit fit` composes it.

The target is `stage=` (default rlhf: the whole regime); the stages come from `pipeline.plan`,
exactly as `chimed-lit fit` composes them (a recipe's per-stage values hold for whichever stage
is the target, under the command line's own overrides).
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from chimed_lit.io.errors import ConfigError

DEFAULT_TARGET = "rlhf"


def stage_configs(overrides: list[str]) -> list[tuple[str, DictConfig]]:
    """(stage, composed config) upstream first, ending with the target; every `???` value
    (a preset's required path, say) is an error naming the stage and the key."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from chimed_lit.run.compose import CONFIG_MODULE
    from chimed_lit.run.pipeline import plan

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
            from hydra import compose

            order = plan(compose(config_name="fit", overrides=overrides), overrides)
    finally:
        GlobalHydra.instance().clear()
    last = order[-1][0]
    problems = [
        f"{k} is required for the {name} stage (set {'' if name == last else name + '.'}"
        f"{k}=... on the command line)"
        for name, cfg in order
        for k in sorted(OmegaConf.missing_keys(cfg))
    ]
    if problems:
        raise ConfigError(problems)
    return order
