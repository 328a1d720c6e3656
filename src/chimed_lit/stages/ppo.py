"""RLHF by PPO (`stage.algorithm=ppo`): the SFT policy as actor and frozen reference, the reward
model as frozen scorer and as the critic's start. Exports `rlhf/hf/` (the actor)."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from chimed_lit.planning.setup import StageSetup, stage_setup
from chimed_lit.stages.rl import RLStage, policy_and_reward


class PPO(RLStage):
    plan_kind = "ppo"
    # LoRA: one base per pair, the reference is the actor with adapters off and the reward
    # model the critic's base with its trained head
    lora_targets = {"actor": "CAUSAL_LM", "critic": "SEQ_CLS"}

    def problems(self, cfg: DictConfig) -> list[str]:
        out = super().problems(cfg)
        target = str((cfg.get("strategy") or {}).get("_target_", ""))
        if target.rsplit(".", 1)[-1] != "deepspeed":
            return out
        return out + [
            (
                f"strategy=deepspeed_* with stage={cfg.stage.name}: PPO steps two optimizers "
                "(actor and critic) itself, which Lightning's DeepSpeed strategy does not "
                f"support; keep DeepSpeed for the other stages and add {cfg.stage.name}."
                "strategy=fsdp2 (every PPO model sharded, the actor gathered once per rollout) "
                f"or {cfg.stage.name}.strategy=ddp, or use stage.algorithm=rejection_sampling"
            )
        ]

    def build_models(self, cfg: DictConfig, factory: Any, upstream: dict[str, str]) -> tuple:
        from chimed_lit.stages.loading import (
            causal_lm,
            reward_model,
            tokenizer_for,
            with_adapters,
            with_reference,
        )

        policy, reward = policy_and_reward(cfg, upstream, f"the {cfg.stage.name} stage")
        tok = tokenizer_for(factory, policy)
        frozen = with_reference(cfg)
        models = {
            "actor": causal_lm(cfg, factory, tok, policy),
            "ref": factory.load_causal_lm(tok, pretrained=policy) if frozen else None,
            "critic": reward_model(cfg, factory, tok, reward),
            "reward_model": factory.load_reward_model(tok, pretrained=reward) if frozen else None,
            "tokenizer": tok,
        }
        return tok, with_adapters(cfg, models, self.lora_targets)

    def plan_setup(self, cfg: DictConfig) -> StageSetup:
        module, data = cfg.stage.get("module") or {}, cfg.data
        new = int(module.get("sampling", {}).get("max_new_tokens", 0))
        return stage_setup(
            cfg,
            self.plan_kind,
            rollout_batch=int(data.batch_size),
            rollout_tokens=int(data.max_length) + new,
            minibatch=int(module.get("minibatch_size", data.batch_size)),
        )


ALGORITHM = PPO
