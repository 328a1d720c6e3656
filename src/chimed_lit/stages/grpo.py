"""RL by GRPO (`stage.algorithm=grpo`, Shao et al. 2024, DeepSeekMath section 4.1): G samples
per prompt, advantages normalised within each group, the clipped ratio, KL to the reference as
a loss term. No critic; the reward model is loaded only when `stage.reward` uses it, and the
pipeline trains the reward stage only then. Exports `rlhf/hf/` (the policy).

The family's other members (`dr_grpo`, `dapo`, `gspo`, `rloo`, `reinforce_pp`) are this stage
with another `PRESET`: the knobs of `stage.grpo` left null take the algorithm's value, and a
value set on the command line wins. The module that runs them all is `modules.grpo.GRPOModule`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from omegaconf import DictConfig, OmegaConf

from chimed_lit.io.errors import ConfigError
from chimed_lit.planning.setup import StageSetup, stage_setup
from chimed_lit.rewards.compose import needs_reward_model, option_problems
from chimed_lit.stages import StageContext
from chimed_lit.stages.rl import RLStage

MODULE = "chimed_lit.modules.grpo.GRPOModule"
ADVANTAGES = ("grpo", "dr_grpo", "rloo", "reinforce_pp")
AGGREGATIONS = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum")
KL_ESTIMATORS = ("k1", "k2", "k3", "low_var")  # losses.kl.KL_ESTIMATORS (no torch here)


class GRPO(RLStage):
    plan_kind = "grpo"
    lora_targets: ClassVar[dict[str, str]] = {"actor": "CAUSAL_LM"}
    # Dr. GRPO: seq_mean_token_sum divides by N x max_tokens (default max_new_tokens)
    CONSTANT_NORMALISER: ClassVar[bool] = False
    # the values this algorithm gives the `stage.grpo` knobs left null (the paper's)
    PRESET: ClassVar[dict[str, Any]] = {
        "advantage": "grpo",
        "ratio_level": "token",
        "aggregation": "seq_mean_token_mean",  # DeepSeekMath eq. 3: 1/G sum_i 1/|o_i| sum_t
        "clip_low": 0.2,
        "clip_high": 0.2,
        "kl_coef": 0.04,  # DeepSeekMath's beta
        "kl_estimator": "k3",
        "dynamic_sampling": False,
        "overlong": {"mode": "none", "buffer": 0},
    }

    # ----- the regime -------------------------------------------------------------------------
    def needs(self, cfg: DictConfig, pretrained_given: bool = False) -> list[str]:
        """The sft stage (unless `stage.policy`), and the reward stage only when a reward is
        the trained reward model (unless `stage.reward_model`)."""
        needs = [] if cfg.stage.get("policy") else ["sft"]
        if self.uses_reward_model(cfg) and not cfg.stage.get("reward_model"):
            needs.append("reward")
        return needs

    @staticmethod
    def uses_reward_model(cfg: DictConfig) -> bool:
        """Whether `stage.reward` includes the reward model (a bad spec: no; `problems` says
        what is wrong with it, beside every other problem)."""
        try:
            return needs_reward_model(_reward_spec(cfg))
        except ConfigError:
            return False

    def problems(self, cfg: DictConfig) -> list[str]:
        out = option_problems(_reward_spec(cfg), _container(cfg.stage.get("reward_options")))
        try:
            knobs = self.knobs(cfg)
        except ConfigError as e:
            return [*out, *e.problems]
        return out + knob_problems(knobs) + self._strategy_problems(cfg)

    @staticmethod
    def _strategy_problems(cfg: DictConfig) -> list[str]:
        out = []
        target = str((cfg.get("strategy") or {}).get("_target_", ""))
        if target.rsplit(".", 1)[-1] == "deepspeed":
            out.append(
                f"strategy=deepspeed_* with stage.algorithm={cfg.stage.algorithm}: the RL "
                "stages run under ddp or fsdp2 for now; keep DeepSpeed for the other stages "
                f"and add {cfg.stage.name}.strategy=fsdp2 or {cfg.stage.name}.strategy=ddp"
            )
        return out

    def check_models(self, cfg: DictConfig, upstream: dict[str, str]) -> None:
        from chimed_lit.models.model_dirs import check_causal_lm, check_reward_model

        policy = cfg.stage.get("policy") or upstream.get("sft")
        if policy:
            check_causal_lm(str(policy), "stage.policy")
        reward = cfg.stage.get("reward_model") or upstream.get("reward")
        if reward and self.uses_reward_model(cfg):
            check_reward_model(str(reward))

    # ----- the knobs ----------------------------------------------------------------------------
    def knobs(self, cfg: DictConfig) -> dict[str, Any]:
        """`stage.grpo` with this algorithm's preset in place of its nulls."""
        raw = _container(cfg.stage.get("grpo"))
        if not isinstance(raw, dict):
            raise ConfigError("stage.grpo must be a mapping of the GRPO knobs")
        out = dict(raw)
        for key, value in self.PRESET.items():
            if out.get(key) is None:
                out[key] = value
            elif isinstance(value, dict) and isinstance(out[key], dict):  # key by key
                out[key] = {**value, **{k: v for k, v in out[key].items() if v is not None}}
        if self.CONSTANT_NORMALISER and not out.get("max_tokens"):
            new = (out.get("sampling") or {}).get("max_new_tokens")
            out["max_tokens"] = _number(new, int) or None
        overlong = dict(out.get("overlong") or {})
        if overlong.get("mode") == "soft" and not overlong.get("buffer"):
            new = _number((out.get("sampling") or {}).get("max_new_tokens"), int) or 0
            overlong["buffer"] = max(1, new // 4)  # the last quarter, as DAPO's 4k of 20k
        out["overlong"] = overlong
        return out

    def module_config(self, cfg: DictConfig) -> dict[str, Any]:
        """`stage.module` for `GRPOModule`: the resolved knobs, the rewards and the template."""
        knobs = self.knobs(cfg)
        return {
            "_target_": MODULE,
            **knobs,
            "reward": _reward_spec(cfg),
            "reward_options": _container(cfg.stage.get("reward_options")),
            "template": str(cfg.data.get("template", "chimed")),
            "stage": cfg.stage.name,
        }

    # ----- building and running -------------------------------------------------------------
    def build_models(self, cfg: DictConfig, factory: Any, upstream: dict[str, str]) -> tuple:
        from chimed_lit.stages.loading import (
            causal_lm,
            tokenizer_for,
            with_adapters,
            with_reference,
        )

        policy = cfg.stage.get("policy") or upstream.get("sft")
        if not policy:
            raise ConfigError(
                f"the {cfg.stage.name} stage needs a policy: set stage.policy=DIR or let the "
                "pipeline build the sft stage"
            )
        tok = tokenizer_for(factory, str(policy))
        knobs = self.knobs(cfg)
        models: dict[str, Any] = {
            "actor": causal_lm(cfg, factory, tok, str(policy)),
            "tokenizer": tok,
        }
        if float(knobs["kl_coef"]) > 0 and with_reference(cfg):  # LoRA: the adapters-off base
            models["ref"] = factory.load_causal_lm(tok, pretrained=str(policy))
        if self.uses_reward_model(cfg):
            reward = cfg.stage.get("reward_model") or upstream.get("reward")
            if not reward:
                raise ConfigError(
                    "stage.reward uses reward_model: set stage.reward_model=DIR or let the "
                    "pipeline build the reward stage"
                )
            models["reward_model"] = factory.load_reward_model(tok, pretrained=str(reward))
        return tok, with_adapters(cfg, models, self.lora_targets)

    def run(self, cfg: DictConfig, ctx: StageContext) -> dict[str, Any]:
        """The shared runner with `stage.module` set to this algorithm's `GRPOModule` (the
        stage's `config.yaml` then records every resolved knob)."""
        cfg = cfg.copy()
        OmegaConf.set_struct(cfg, False)
        cfg.stage.module = self.module_config(cfg)
        return ctx.fit(
            cfg, upstream=ctx.upstream, run_name=ctx.run_name, fingerprint=ctx.fingerprint
        )

    def plan_setup(self, cfg: DictConfig) -> StageSetup:
        knobs, data = self.knobs(cfg), cfg.data
        new = int((knobs.get("sampling") or {}).get("max_new_tokens", 0))
        rollout = int(data.batch_size) * int(knobs["group_size"])
        return stage_setup(
            cfg,
            self.plan_kind,
            rollout_batch=rollout,
            rollout_tokens=int(data.max_length) + new,
            minibatch=int(knobs.get("minibatch_size") or rollout),
            grpo_reference=float(knobs["kl_coef"]) > 0,
            grpo_reward_model=self.uses_reward_model(cfg),
        )


def _number(value: Any, kind: type = float) -> float | int | None:
    """`value` as a number of `kind`, or None when it is none (bools are not numbers)."""
    if isinstance(value, bool):
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError):
        return None
    return number if kind is float or number == float(value) else None


def knob_problems(knobs: dict[str, Any]) -> list[str]:
    """Every bad `stage.grpo` knob, in words (before anything loads or trains)."""
    out = []

    def check(key: str, ok: bool, want: str, kind: type = float) -> None:
        value = knobs.get(key)
        if _number(value, kind) is None or not ok:
            out.append(f"stage.grpo.{key}={value}: {want}")

    def num(key: str, kind: type = float) -> float:
        return _number(knobs.get(key), kind) or 0

    check(
        "group_size", num("group_size", int) >= 2, "use 2 or more (the baseline is the group)", int
    )
    check(
        "clip_low",
        0 < num("clip_low") < 1,
        "use a value in (0, 1): the ratio's floor is 1 - clip_low",
    )
    check("clip_high", num("clip_high") > 0, "use a value > 0")
    check("kl_coef", num("kl_coef") >= 0, "use a value >= 0 (0: no KL term, no reference)")
    check("entropy_coef", True, "use a number")
    check("update_epochs", num("update_epochs", int) >= 1, "use 1 or more passes", int)
    check("val_samples", num("val_samples", int) >= 1, "use 1 or more replies", int)
    check("max_wait", num("max_wait", int) >= 1, "use 1 or more steps", int)
    mb = knobs.get("minibatch_size")
    if mb is not None and not (_number(mb, int) or 0) >= 1:
        out.append(f"stage.grpo.minibatch_size={mb}: use null (the whole rollout) or >= 1")
    choices = {
        "advantage": ADVANTAGES,
        "aggregation": AGGREGATIONS,
        "ratio_level": ("token", "sequence"),
        "kl_estimator": KL_ESTIMATORS,
    }
    for key, allowed in choices.items():
        if knobs.get(key) not in allowed:
            out.append(f"stage.grpo.{key}={knobs.get(key)}: use one of {', '.join(allowed)}")
    sampling = knobs.get("sampling") or {}
    new = _number(sampling.get("max_new_tokens"), int)
    if new is None or new < 1:
        out.append(f"stage.grpo.sampling.max_new_tokens={sampling.get('max_new_tokens')}: use >= 1")
        new = 0
    if sampling.get("do_sample") is False:
        out.append(
            "stage.grpo.sampling.do_sample=false: the G replies to a prompt would be identical "
            "(every group without a reward spread); the GRPO family samples"
        )
    temperature = _number(sampling.get("temperature", 1.0))
    if temperature is None or temperature <= 0:
        out.append(f"stage.grpo.sampling.temperature={sampling.get('temperature')}: use > 0")
    overlong = knobs.get("overlong") or {}
    mode = overlong.get("mode", "none")
    if mode not in ("none", "filter", "soft"):
        out.append(f"stage.grpo.overlong.mode={mode}: use none, filter or soft")
    buffer = _number(overlong.get("buffer") or 0, int)
    if mode == "soft" and not (buffer is not None and 0 < buffer <= new):
        out.append(
            f"stage.grpo.overlong.buffer={overlong.get('buffer')}: the soft penalty ramps over "
            f"the last buffer tokens: use 1..max_new_tokens ({new})"
        )
    return out


def _container(node: Any) -> Any:
    """A config node as plain Python (an absent or empty node: {})."""
    if node is None:
        return {}
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def _reward_spec(cfg: DictConfig) -> Any:
    spec = cfg.stage.get("reward", "reward_model")
    if OmegaConf.is_config(spec):
        return OmegaConf.to_container(spec, resolve=True)
    return spec


ALGORITHM = GRPO
