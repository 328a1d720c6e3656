"""A stage's peak GPU memory: the models it holds, their states, activations and KV cache.

Persistent memory (every model's states) is held throughout; on top of it each phase adds its
own: `train` the activations of the trained models' forward/backward, `rollout` (PPO, rejection
sampling) the KV cache of generation plus, under ZeRO-3, the policy's weights gathered once for
the whole rollout. The peak is persistent + the larger phase.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chimed_lit.planning.activations import activations, kv_cache_bytes
from chimed_lit.planning.memory import (
    OPTIONS,
    ModelStates,
    Sharding,
    deepspeed_estimate,
    frozen_states,
    trained_states,
)
from chimed_lit.planning.model_size import ModelShape
from chimed_lit.planning.setup import StageSetup


@dataclass(frozen=True)
class Line:
    label: str
    bytes: float
    phase: str = "persistent"  # persistent | train | rollout


@dataclass
class StagePlan:
    setup: StageSetup
    models: list[tuple[str, str, ModelShape]]  # (role, trained|frozen, shape)
    lines: list[Line]
    phases: dict[str, float]  # extra bytes per phase
    trained: dict[str, float] = field(default_factory=dict)  # trained models' states per option
    frozen: dict[str, float] = field(default_factory=dict)  # frozen models' weights per option
    deepspeed: dict[str, float] = field(default_factory=dict)  # DeepSpeed's figure (trained)
    activation_options: dict[str, float] = field(default_factory=dict)

    @property
    def persistent(self) -> float:
        return sum(x.bytes for x in self.lines if x.phase == "persistent")

    @property
    def peak_phase(self) -> str:
        return max(self.phases, key=self.phases.get)

    @property
    def peak(self) -> float:
        return self.persistent + self.phases[self.peak_phase]


def roles(setup: StageSetup, lm: ModelShape, rm: ModelShape) -> list[tuple[str, str, ModelShape]]:
    """The models a stage holds on the GPU."""
    if setup.kind == "reward":
        return [("reward model", "trained", rm)]
    if setup.kind == "dpo":
        return [("policy", "trained", lm)] + (
            [("reference", "frozen", lm)] if setup.dpo_reference else []
        )
    if setup.kind == "ppo":
        return [
            ("actor", "trained", lm),
            ("critic", "trained", rm),
            ("reference", "frozen", lm),
            ("reward", "frozen", rm),
        ]
    if setup.kind == "grpo":  # critic-free: the group is the baseline
        return (
            [("policy", "trained", lm)]
            + ([("reference", "frozen", lm)] if setup.grpo_reference else [])
            + ([("reward", "frozen", rm)] if setup.grpo_reward_model else [])
        )
    if setup.kind == "rejection_sampling":
        return [("policy", "trained", lm), ("reward", "frozen", rm)]
    return [("model", "trained", lm)]


def _states(setup: StageSetup, sharding: Sharding, how: str, shape: ModelShape) -> ModelStates:
    if how == "trained":
        return trained_states(
            shape.params, shape.largest_layer_params, setup.gpus, sharding, setup.layout
        )
    return frozen_states(
        shape.params, shape.largest_layer_params, setup.gpus, sharding, setup.layout.weights
    )


def _train_activations(setup: StageSetup, lm: ModelShape, rm: ModelShape, ckpt: bool) -> float:
    fused = setup.fused_attention
    if setup.kind == "ppo":  # actor and critic forward/backward on the same minibatch
        s, b = setup.rollout_tokens, setup.minibatch
        return (
            activations(lm, s, b, ckpt, fused).total
            + activations(rm, s, b, ckpt, fused, lm_head=False).total
        )
    if setup.kind == "grpo":  # the policy's forward/backward on one update minibatch
        return activations(lm, setup.rollout_tokens, setup.minibatch, ckpt, fused).total
    if setup.kind == "rejection_sampling":
        return activations(lm, setup.rollout_tokens, setup.micro_batch, ckpt, fused).total
    rows = 2 * setup.micro_batch if setup.kind in ("reward", "dpo") else setup.micro_batch
    shape = rm if setup.kind == "reward" else lm
    return activations(
        shape,
        setup.seq_len,
        rows,
        ckpt,
        fused,
        lm_head=setup.kind != "reward",
        loss_chunk=setup.loss_chunk,
    ).total


def plan_stage(setup: StageSetup, lm: ModelShape, rm: ModelShape) -> StagePlan:
    """The memory plan of one stage (`lm`: the causal LM's shape, `rm`: the reward model's)."""
    models = roles(setup, lm, rm)
    lines: list[Line] = []
    for role, how, shape in models:
        st = _states(setup, setup.sharding, how, shape)
        if how == "trained":
            lines += [
                Line(f"{role}: parameters", st.params),
                Line(f"{role}: gradients", st.grads),
                Line(f"{role}: optimizer states", st.optimizer),
            ]
        else:
            lines.append(Line(f"{role}: parameters (frozen, inference only)", st.params))
        if st.gather:
            lines.append(Line(f"{role}: ZeRO-3 gather buffer (largest layer)", st.gather))
    act = _train_activations(setup, lm, rm, setup.checkpointing)
    ck = "on" if setup.checkpointing else "off"
    lines.append(Line(f"activations (checkpointing {ck})", act, "train"))
    phases = {"train": act}
    if setup.kind in ("ppo", "grpo", "rejection_sampling"):
        kv = kv_cache_bytes(lm, setup.rollout_batch, setup.rollout_tokens, setup.layout.weights)
        lines.append(
            Line(
                f"rollout KV cache ({setup.rollout_batch} x {setup.rollout_tokens} tokens)",
                kv,
                "rollout",
            )
        )
        rollout = kv
        if setup.sharding.zero_stage == 3:  # the policy gathered whole once per rollout
            held = 0 if setup.sharding.offload_parameters else lm.params / setup.gpus
            gathered = setup.layout.weights * (lm.params - held)
            lines.append(Line("policy weights gathered for generation", gathered, "rollout"))
            rollout += gathered
        phases["rollout"] = rollout
    plan = StagePlan(setup, models, lines, phases)
    for option in OPTIONS:
        plan.trained[option.label] = sum(
            _states(setup, option, how, s).total for _, how, s in models if how == "trained"
        )
        plan.frozen[option.label] = sum(
            _states(setup, option, how, s).total for _, how, s in models if how == "frozen"
        )
        trained = [s for _, how, s in models if how == "trained"]
        ds = [
            deepspeed_estimate(
                s.params, s.largest_layer_params, setup.gpus_per_node, setup.nodes, option
            )
            for s in trained
        ]
        if setup.strategy == "deepspeed" and ds and all(x is not None for x in ds):
            plan.deepspeed[option.label] = sum(ds)
    plan.activation_options = {
        "checkpointing off": _train_activations(setup, lm, rm, False),
        "checkpointing on": _train_activations(setup, lm, rm, True),
    }
    return plan
