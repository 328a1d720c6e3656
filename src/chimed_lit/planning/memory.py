"""Model-state memory per GPU: parameters, gradients and optimizer states under ZeRO sharding.

Accounting (Rajbhandari et al. 2020, "ZeRO", Sec. 3), counted as DeepSpeed's own estimators
count it (`estimate_zero2_model_states_mem_needs` in `deepspeed.runtime.zero.stage_1_and_2`,
`estimate_zero3_model_states_mem_needs` in `stage3`), so our figures equal theirs: with DeepSpeed
in bf16 a parameter costs 2 bytes of 16-bit weights, 6 of gradients (16-bit 2 + fp32 partition 4)
and 12 of Adam state (fp32 master weights 4, momentum 4, variance 4). ZeRO-1 shards the Adam
state over the GPUs, ZeRO-2 the gradients too (2 + 18/N, DeepSpeed's formula), ZeRO-3 the
weights too and keeps no 16-bit gradient copy (18/N, DeepSpeed's formula) plus a buffer of
4 bytes x the largest layer gathered at a time. Offloading the optimizer moves the Adam state and
the gradient partitions to CPU; offloading parameters (ZeRO-3) moves the weights too.
Without DeepSpeed (DDP, FSDP2) torch keeps weights and gradients in the model's dtype and
AdamW's two moments in the same dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 2**30
_DTYPE_BYTES = {"float32": 4, "fp32": 4, "bfloat16": 2, "bf16": 2, "float16": 2, "fp16": 2}


@dataclass(frozen=True)
class StateBytes:
    """Bytes per parameter of weights, gradients and optimizer states (unsharded);
    `zero3_grads`: the gradient bytes kept under ZeRO-3 (None: the same as `grads`)."""

    weights: int
    grads: int
    optimizer: int
    zero3_grads: int | None = None


def state_bytes(deepspeed: bool, precision: str, dtype: str) -> StateBytes:
    """The per-parameter layout for a strategy, a Trainer precision and a model dtype."""
    if deepspeed:
        if "16" in str(precision):
            return StateBytes(2, 6, 12, zero3_grads=4)  # as DeepSpeed's estimators count
        return StateBytes(4, 4, 8)
    b = _DTYPE_BYTES.get(str(dtype), 4)
    return StateBytes(b, b, 2 * b)


@dataclass(frozen=True)
class Sharding:
    """How model states are spread: ZeRO stage 0-3 (0 = replicated, DDP) and CPU offload."""

    zero_stage: int = 0
    offload_optimizer: bool = False
    offload_parameters: bool = False

    @property
    def label(self) -> str:
        off = []
        if self.offload_optimizer and self.zero_stage > 0:
            off.append("opt")
        if self.offload_parameters and self.zero_stage == 3:
            off.append("param")
        return f"ZeRO-{self.zero_stage}" + (f"+{'/'.join(off)} offload" if off else "")


# the options a plan compares, cheapest in communication first
OPTIONS = (
    Sharding(0),
    Sharding(1),
    Sharding(2),
    Sharding(2, True),
    Sharding(3),
    Sharding(3, True),
    Sharding(3, True, True),
)


@dataclass(frozen=True)
class ModelStates:
    """Bytes per GPU (and per node's CPU for offloaded parts, before DeepSpeed's buffers)."""

    params: float
    grads: float
    optimizer: float
    gather: float = 0.0

    @property
    def total(self) -> float:
        return self.params + self.grads + self.optimizer + self.gather


def trained_states(
    params: int, largest_layer: int, gpus: int, sharding: Sharding, layout: StateBytes
) -> ModelStates:
    """Model states per GPU of a model being trained."""
    n, z = max(gpus, 1), sharding.zero_stage
    weights = layout.weights * params / (n if z >= 3 else 1)
    per_grad = layout.zero3_grads if z == 3 and layout.zero3_grads is not None else layout.grads
    grads = per_grad * params / (n if z >= 2 else 1)
    optim = layout.optimizer * params / (n if z >= 1 else 1)
    if z >= 1 and sharding.offload_optimizer:
        grads, optim = 0.0, 0.0
    if z == 3 and sharding.offload_parameters:
        weights = 0.0
    gather = 4.0 * largest_layer if z == 3 else 0.0
    return ModelStates(weights, grads, optim, gather)


def frozen_states(
    params: int, largest_layer: int, gpus: int, sharding: Sharding, weight_bytes: int
) -> ModelStates:
    """A model used for inference only (PPO's reference and reward): weights alone, sharded and
    gathered layer by layer under ZeRO-3 inference, on CPU with parameter offload."""
    if sharding.zero_stage < 3:
        return ModelStates(weight_bytes * params, 0.0, 0.0)
    weights = 0.0 if sharding.offload_parameters else weight_bytes * params / max(gpus, 1)
    return ModelStates(weights, 0.0, 0.0, 4.0 * largest_layer)


def _estimators():
    """DeepSpeed's two estimators. Imported with stdout sent to stderr: DeepSpeed logs its
    accelerator choice on import, and `chimed-lit plan --json` must print nothing but JSON."""
    import contextlib
    import sys

    with contextlib.redirect_stdout(sys.stderr):
        from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
        from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs
    return estimate_zero2_model_states_mem_needs, estimate_zero3_model_states_mem_needs


def deepspeed_estimate(
    params: int, largest_layer: int, gpus_per_node: int, nodes: int, sharding: Sharding
) -> float | None:
    """DeepSpeed's own GPU figure for `sharding` (ZeRO-2 and ZeRO-3 only), or None."""
    if sharding.zero_stage not in (2, 3):
        return None
    try:
        zero2, zero3 = _estimators()
    except ImportError:
        return None
    if sharding.zero_stage == 2:
        return float(zero2(params, gpus_per_node, nodes, cpu_offload=sharding.offload_optimizer)[1])
    return float(
        zero3(
            params,
            largest_layer,
            gpus_per_node,
            nodes,
            cpu_offload=sharding.offload_optimizer,
            cpu_offload_params=sharding.offload_parameters,
        )[1]
    )
