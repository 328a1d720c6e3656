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
        g = knobs["group_size"]
        if not isinstance(g, int) or g < 2:
            out.append(f"stage.grpo.group_size={g}: use 2 or more (the baseline is the group)")
        if knobs["aggregation"] not in AGGREGATIONS:
            out.append(
                f"stage.grpo.aggregation={knobs['aggregation']}: use one of "
                f"{', '.join(AGGREGATIONS)}"
            )
        if knobs["ratio_level"] not in ("token", "sequence"):
            out.append(f"stage.grpo.ratio_level={knobs['ratio_level']}: use token or sequence")
        if knobs["kl_estimator"] not in KL_ESTIMATORS:
            out.append(
                f"stage.grpo.kl_estimator={knobs['kl_estimator']}: use one of "
                f"{', '.join(KL_ESTIMATORS)}"
            )
        for key in ("clip_low", "clip_high", "kl_coef"):
            if not float(knobs[key]) >= 0:
                out.append(f"stage.grpo.{key}={knobs[key]}: use a value >= 0")
        overlong = knobs["overlong"] or {}
        mode = overlong.get("mode", "none")
        if mode not in ("none", "filter", "soft"):
            out.append(f"stage.grpo.overlong.mode={mode}: use none, filter or soft")
        new = int((knobs.get("sampling") or {}).get("max_new_tokens", 0))
        if mode == "soft" and not 0 < int(overlong.get("buffer") or 0) <= new:
            out.append(
                f"stage.grpo.overlong.buffer={overlong.get('buffer')}: the soft penalty ramps "
                f"over the last buffer tokens: use 1..max_new_tokens ({new})"
            )
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
        if self.CONSTANT_NORMALISER and not out.get("max_tokens"):
            out["max_tokens"] = int((out.get("sampling") or {}).get("max_new_tokens", 0)) or None
        overlong = dict(out.get("overlong") or {})
        if overlong.get("mode") == "soft" and not overlong.get("buffer"):
            new = int((out.get("sampling") or {}).get("max_new_tokens", 0))
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
