"""What a stage's composed config says about its memory: GPUs, sharding, batch, lengths, models."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig

from chimed_lit.io.errors import ConfigError
from chimed_lit.planning.memory import Sharding, StateBytes, state_bytes

# the memory layouts the planner knows (`stage_plan.roles`); a stage picks one (`Stage.plan_kind`)
PLAN_KINDS = ("causal_lm", "reward", "dpo", "ppo", "grpo", "rejection_sampling")


@dataclass(frozen=True)
class StageSetup:
    """One stage's memory-relevant settings. `kind`: causal_lm (pretrain, sft), reward, dpo, ppo,
    grpo or rejection_sampling. Rollout fields are for the RL kinds only; `rollout_batch` counts
    sequences generated at once (GRPO: prompts x group size)."""

    stage: str
    kind: str
    gpus_per_node: int
    nodes: int
    strategy: str
    sharding: Sharding
    layout: StateBytes
    checkpointing: bool
    fused_attention: bool
    micro_batch: int
    seq_len: int
    accumulate: int = 1
    rollout_batch: int = 0
    rollout_tokens: int = 0
    minibatch: int = 0
    dpo_reference: bool = True
    grpo_reference: bool = True  # grpo: a frozen reference (KL term on)
    grpo_reward_model: bool = False  # grpo: a frozen reward model among the rewards
    loss_chunk: int = 0  # causal_lm: `stage.module.loss_chunk` (0: full logits)

    @property
    def gpus(self) -> int:
        return self.gpus_per_node * self.nodes

    @property
    def global_batch(self) -> int:
        return self.micro_batch * self.accumulate * self.gpus


def _devices(value) -> int:
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if hasattr(value, "__len__") and not isinstance(value, str):
        return len(value)
    raise ConfigError(
        f"trainer.devices={value!r}: planning needs a number of GPUs (e.g. trainer.devices=8)"
    )


def _strategy(cfg: DictConfig) -> tuple[str, Sharding, bool]:
    node = cfg.get("strategy") or {}
    target = str(node.get("_target_", "auto")).rsplit(".", 1)[-1]
    if "deepspeed" in target:
        return (
            "deepspeed",
            Sharding(
                int(node.get("zero_stage", 2)),
                bool(node.get("offload_optimizer", False)),
                bool(node.get("offload_parameters", False)),
            ),
            True,
        )
    if "fsdp" in target:
        off = bool(node.get("cpu_offload", False))
        return "fsdp2", Sharding(3, off, off), False
    return target, Sharding(0), False


def stage_setup(cfg: DictConfig, kind: str, **fields: int | bool) -> StageSetup:
    """Read a composed stage config (as the pipeline composes it) into a StageSetup. `kind` and
    the stage-specific `fields` (rollout sizes, the DPO reference) come from the stage's own
    module (`Stage.plan_setup`), which knows its config; this reads what every stage shares."""
    if kind not in PLAN_KINDS:  # a plausible causal-LM plan for an unknown layout would mislead
        raise ValueError(
            f"stage {cfg.stage.name}: plan_kind={kind!r} is no memory layout the planner knows "
            f"({', '.join(PLAN_KINDS)}); pick the nearest in the stage's class"
        )
    strategy, sharding, is_ds = _strategy(cfg)
    trainer, data, model = cfg.trainer, cfg.data, cfg.model
    return StageSetup(
        stage=str(cfg.stage.name),
        kind=kind,
        gpus_per_node=_devices(trainer.get("devices", 1)),
        nodes=int(trainer.get("num_nodes", 1) or 1),
        strategy=strategy,
        sharding=sharding,
        layout=state_bytes(
            is_ds, str(trainer.get("precision", "32-true")), str(model.get("dtype", "float32"))
        ),
        checkpointing=bool(model.get("gradient_checkpointing", False)),
        fused_attention=str(model.get("attn_implementation", "sdpa")) != "eager",
        micro_batch=int(data.batch_size),
        seq_len=int(data.max_length),
        accumulate=int(trainer.get("accumulate_grad_batches", 1) or 1),
        **fields,
    )
