"""What every RL algorithm of the rlhf stage shares: its starting models and its algorithm.

`stage.algorithm=<name>` picks the algorithm: the `Stage` class `ALGORITHM` of the module
`chimed_lit.stages.<name>` (`ppo`, `rejection_sampling`), or of any importable module given by
its dotted path (`stage.algorithm=my_pkg.my_algo`). Adding an algorithm is one module here that
subclasses `RLStage` and sets `ALGORITHM`, with its knobs under `stage.` in `configs/stage/rlhf.yaml`.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil

from omegaconf import DictConfig

import chimed_lit.stages as stages_pkg
from chimed_lit.io.errors import ConfigError
from chimed_lit.models.model_dirs import check_causal_lm, check_reward_model
from chimed_lit.stages import Stage


class RLStage(Stage):
    """A policy (`stage.policy` or the sft stage's `hf/`) optimised against a reward model
    (`stage.reward_model` or the reward stage's `hf/`)."""

    def needs(self, cfg: DictConfig, pretrained_given: bool = False) -> list[str]:
        """`stage.policy` / `stage.reward_model` replace the sft / reward stages
        (`model.pretrained` replaces neither: RL starts from two models)."""
        needs = list(cfg.stage.get("needs") or [])
        if cfg.stage.get("policy"):
            needs = [n for n in needs if n != "sft"]
        if cfg.stage.get("reward_model"):
            needs = [n for n in needs if n != "reward"]
        return needs

    def problems(self, cfg: DictConfig) -> list[str]:
        return reward_problems(cfg)

    def check_models(self, cfg: DictConfig, upstream: dict[str, str]) -> None:
        check_rl_models(cfg, upstream)


def reward_problems(cfg: DictConfig) -> list[str]:
    """Algorithms scoring with the reward model alone (PPO, rejection sampling) refuse another
    `stage.reward` rather than ignore it."""
    spec = cfg.stage.get("reward", "reward_model")
    if spec in (None, "reward_model"):
        return []
    return [
        (
            f"stage.reward={spec} with stage.algorithm={cfg.stage.get('algorithm')}: this "
            "algorithm scores with the trained reward model only; use a GRPO-family algorithm "
            "(stage.algorithm=grpo, dr_grpo, dapo, gspo, rloo, reinforce_pp) for other rewards"
        )
    ]


def check_rl_models(cfg: DictConfig, upstream: dict[str, str]) -> None:
    """The policy dir holds a causal LM and the reward model dir a scalar head."""
    policy = cfg.stage.get("policy") or upstream.get("sft")
    reward = cfg.stage.get("reward_model") or upstream.get("reward")
    if policy:
        check_causal_lm(str(policy), "stage.policy")
    if reward:
        check_reward_model(str(reward))


def policy_and_reward(cfg: DictConfig, upstream: dict[str, str], who: str) -> tuple[str, str]:
    """The policy and reward model dirs RL starts from: `stage.policy` / `stage.reward_model`,
    else the sft / reward stages' `hf/`."""
    policy = cfg.stage.get("policy") or upstream.get("sft")
    reward = cfg.stage.get("reward_model") or upstream.get("reward")
    if not policy or not reward:
        raise ConfigError(
            f"{who} needs a policy and a reward model: set stage.policy=DIR and "
            "stage.reward_model=DIR, or let the pipeline build the sft and reward "
            "stages"
        )
    return str(policy), str(reward)


def known_algorithms() -> list[str]:
    """The algorithms shipped in this package (modules here that declare `ALGORITHM`)."""
    out = []
    for info in pkgutil.iter_modules(stages_pkg.__path__):
        if hasattr(importlib.import_module(f"{stages_pkg.__name__}.{info.name}"), "ALGORITHM"):
            out.append(info.name)
    return sorted(out)


def algorithm(name: str) -> RLStage:
    """The `Stage` running `stage.algorithm=name` (the `_target_` of rlhf's `stage.spec`)."""
    path = name if "." in name else f"chimed_lit.stages.{name}"
    try:
        found = importlib.util.find_spec(path) is not None
    except ImportError:  # its parent package is missing
        found = False
    cls = getattr(importlib.import_module(path), "ALGORITHM", None) if found else None
    if cls is None:
        raise ConfigError(
            f"stage.algorithm={name}: no such algorithm (a module declaring ALGORITHM); use one "
            f"of {', '.join(known_algorithms())}, or a module path such as my_pkg.my_algo"
        )
    return cls()
