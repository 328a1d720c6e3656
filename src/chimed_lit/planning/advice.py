"""The verdict and the smallest change that fits.

Changes are tried cheapest first, by what they cost in speed: activation checkpointing (about a
third more compute), a smaller micro-batch with more accumulation (same global batch, less
throughput), a higher ZeRO stage (more communication), CPU offload (PCIe-bound), and last more
GPUs (more hardware). The first single change that fits wins; failing that, changes accumulate
in the same order. When the answer offloads to CPU (or nothing fits) the number of GPUs that
would fit without offloading is given too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from chimed_lit.planning.memory import GIB, Sharding
from chimed_lit.planning.setup import StageSetup

_DS_PRESET = {
    (1, False, False): "deepspeed_zero1",
    (2, False, False): "deepspeed_zero2",
    (3, False, False): "deepspeed_zero3",
    (3, True, True): "deepspeed_zero3_offload",
}


@dataclass(frozen=True)
class Change:
    """One edit to a setup, with the overrides that make it."""

    kind: str  # checkpointing | batch | strategy (a later change of a kind replaces an earlier)
    words: str
    overrides: tuple[str, ...]
    apply: Callable[[StageSetup], StageSetup]


def _strategy_change(s: Sharding) -> Change:
    preset = _DS_PRESET.get((s.zero_stage, s.offload_optimizer, s.offload_parameters))
    ov = (
        (f"strategy={preset}",)
        if preset
        else (
            f"strategy=deepspeed_zero{s.zero_stage}",
            f"strategy.offload_optimizer={str(s.offload_optimizer).lower()}",
            f"strategy.offload_parameters={str(s.offload_parameters).lower()}",
        )
    )
    return Change(
        "strategy",
        f"use DeepSpeed {s.label}",
        ov,
        lambda st: replace(st, sharding=s, strategy="deepspeed"),
    )


def candidates(setup: StageSetup) -> list[Change]:
    """Changes that lower memory from `setup`, cheapest first."""
    out: list[Change] = []
    if not setup.checkpointing:
        out.append(
            Change(
                "checkpointing",
                "enable activation checkpointing",
                ("model.gradient_checkpointing=true",),
                lambda st: replace(st, checkpointing=True),
            )
        )
    out += _batch_changes(setup)
    z = setup.sharding
    for s in (Sharding(2), Sharding(3), Sharding(3, True), Sharding(3, True, True)):
        if (s.zero_stage, s.offload_optimizer, s.offload_parameters) > (
            z.zero_stage,
            z.offload_optimizer,
            z.offload_parameters,
        ):
            out.append(_strategy_change(s))
    return out


def _batch_changes(setup: StageSetup) -> list[Change]:
    """Halving what sets the activations: PPO's update minibatch, else the micro-batch (with
    more accumulation, so the global batch stays; rejection sampling then rolls out fewer)."""
    out = []
    if setup.kind in ("ppo", "grpo"):
        b = setup.minibatch
        key = "stage.module" if setup.kind == "ppo" else "stage.grpo"
        while b > 1:
            b //= 2
            out.append(
                Change(
                    "batch",
                    f"{setup.kind.upper()} update minibatch {b}",
                    (f"{key}.minibatch_size={b}",),
                    lambda st, b=b: replace(st, minibatch=b),
                )
            )
        return out
    b = setup.micro_batch
    while b > 1:
        b //= 2
        acc = setup.accumulate * setup.micro_batch // b
        per = setup.rollout_batch // setup.micro_batch if setup.rollout_batch else 0
        out.append(
            Change(
                "batch",
                f"micro-batch {b} with {acc} accumulation steps (same global batch)",
                (f"data.batch_size={b}", f"trainer.accumulate_grad_batches={acc}"),
                lambda st, b=b, acc=acc, per=per: replace(
                    st, micro_batch=b, accumulate=acc, rollout_batch=per * b
                ),
            )
        )
    return out


@dataclass(frozen=True)
class Advice:
    fits: bool
    peak: float
    budget: float
    changes: tuple[Change, ...] = ()
    peak_after: float | None = None
    gpus_needed: int | None = None

    def words(self) -> str:
        gib = f"{self.peak / GIB:.1f} GiB of {self.budget / GIB:.1f} GiB per GPU"
        if self.fits:
            return f"fits: {gib}"
        if self.changes:
            what = "; then ".join(c.words for c in self.changes)
            ov = " ".join(o for c in self.changes for o in c.overrides)
        gpus = (
            f"; without offloading, {self.gpus_needed} GPUs in all (trainer.devices x "
            f"trainer.num_nodes) would fit"
            if self.gpus_needed
            else ""
        )
        if self.changes and self.peak_after is not None:
            return (
                f"does not fit: {gib}. Smallest change that fits: {what} "
                f"-> {self.peak_after / GIB:.1f} GiB ({ov}){gpus}"
            )
        if self.gpus_needed:
            return f"does not fit: {gib}, whatever is changed on {self.budget / GIB:.0f} GiB{gpus}"
        return f"does not fit: {gib}, whatever is changed (even with more GPUs)"


def _gpus_to_fit(
    setup: StageSetup, peak_of: Callable[[StageSetup], float], budget: float, max_gpus: int
) -> int | None:
    """The smallest power-of-two multiple of the GPUs per node at which `setup` fits."""
    gpus = setup.gpus_per_node
    while gpus * setup.nodes < max_gpus:
        gpus *= 2
        if peak_of(replace(setup, gpus_per_node=gpus)) <= budget:
            return gpus * setup.nodes
    return None


def advise(
    setup: StageSetup, peak_of: Callable[[StageSetup], float], budget: float, max_gpus: int = 1024
) -> Advice:
    """Fits or not; if not, the smallest change (see module doc) that fits, and, when that
    change offloads to CPU or nothing fits, how many GPUs would fit without offloading."""
    peak = peak_of(setup)
    if peak <= budget:
        return Advice(True, peak, budget)
    changes = candidates(setup)
    found: tuple[Change, ...] = ()
    after: float | None = None
    for c in changes:
        if peak_of(c.apply(setup)) <= budget:
            found, after = (c,), peak_of(c.apply(setup))
            break
    if not found:
        current, used = setup, []
        for c in changes:
            current = c.apply(current)
            used = [u for u in used if u.kind != c.kind] + [c]
            if peak_of(current) <= budget:
                found, after = tuple(used), peak_of(current)
                break
        else:
            found = tuple(used)
    if after is not None and not any("offload" in c.words for c in found):
        return Advice(False, peak, budget, found, after)
    on_gpu = setup
    for c in changes:
        if "offload" not in c.words:
            on_gpu = c.apply(on_gpu)
    return Advice(
        False, peak, budget, found, after, _gpus_to_fit(on_gpu, peak_of, budget, max_gpus)
    )
