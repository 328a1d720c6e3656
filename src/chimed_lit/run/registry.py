"""The stage registry: which `Stage` (`chimed_lit.stages`) a composed config runs.

A stage's YAML names its class by `stage.spec._target_` (rlhf's names `stages.rl.algorithm`,
which picks the class of `stage.algorithm`); the pipeline, the preflight, the runner and the
planner ask `stage_of(cfg)` and never branch on a stage's name.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from chimed_lit.io.errors import ChimedError, ConfigError
from chimed_lit.run.compose import CONFIG_MODULE
from chimed_lit.stages import Stage


def stage_names(config_dirs: Sequence[str] = ()) -> tuple[str, ...]:
    """The stages `stage=` accepts: the shipped `configs/stage/` group, plus the `stage/` folder
    of each extra config dir (`--config-dir DIR`)."""
    folders = [files(CONFIG_MODULE).joinpath("stage")]
    folders += [Path(d).expanduser() / "stage" for d in config_dirs]
    return tuple(
        sorted(
            {
                p.name[: -len(".yaml")]
                for folder in folders
                if folder.is_dir()
                for p in folder.iterdir()
                if p.name.endswith(".yaml") and not p.name.startswith("_")
            }
        )
    )


def stage_of(cfg: DictConfig) -> Stage:
    """The `Stage` that `cfg.stage.spec` selects; a `ConfigError` naming the key otherwise."""
    name = cfg.stage.get("name", "?")
    spec = cfg.stage.get("spec")
    if spec is None:
        raise ConfigError(
            f"stage {name}: stage.spec is not set; a stage YAML selects its class with "
            "stage.spec._target_ (e.g. chimed_lit.stages.sft.SFT)"
        )
    try:
        stage = instantiate(spec)
    except InstantiationException as e:
        if isinstance(e.__cause__, ChimedError):  # e.g. an unknown stage.algorithm
            raise e.__cause__ from None
        why = [w.strip() for w in str(e.__cause__ or e).strip().splitlines()]
        raise ConfigError(
            f"stage.spec._target_={spec.get('_target_')!r} of stage {name} cannot be made: "
            f"{' '.join(why) or type(e).__name__}"
        ) from None
    except OmegaConfBaseException as e:
        raise ConfigError(f"stage.spec of stage {name}: {str(e).splitlines()[0]}") from None
    if not isinstance(stage, Stage):
        raise ConfigError(
            f"stage.spec._target_={spec.get('_target_')!r} of stage {name} made a "
            f"{type(stage).__name__}, not a chimed_lit.stages.Stage"
        )
    return stage
