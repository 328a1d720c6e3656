"""The stages a plan covers, each composed as `chimed-lit fit` composes it.

The target is `stage=` (default rlhf: the whole regime); the stages come from `pipeline.plan`,
exactly as `chimed-lit fit` composes them (a recipe's per-stage values hold for whichever stage
is the target, under the command line's own overrides). The planner reads each with
`run.registry.stage_of(cfg).plan_setup(cfg)`.
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra import compose
from omegaconf import DictConfig

from chimed_lit.io.errors import ConfigError
from chimed_lit.run.compose import composing
from chimed_lit.run.pipeline import plan
from chimed_lit.run.preflight import missing_values

DEFAULT_TARGET = "rlhf"


def stage_configs(
    overrides: list[str], config_dirs: Sequence[str] = ()
) -> list[tuple[str, DictConfig]]:
    """(stage, composed config) upstream first, ending with the target; every `???` value
    (a preset's required path, say) is an error naming the stage and the key. `config_dirs`:
    extra config folders (`--config-dir`)."""
    with composing(config_dirs):
        order = plan(compose(config_name="fit", overrides=overrides), overrides)
    last = order[-1][0]
    problems = [p for name, cfg in order for p in missing_values(cfg, is_target=name == last)]
    if problems:
        raise ConfigError(problems)
    return order
