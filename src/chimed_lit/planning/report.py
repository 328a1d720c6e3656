"""Printing a plan: one table per stage (GiB per GPU), the verdict and the advice; or JSON."""

from __future__ import annotations

from typing import Any

from chimed_lit.planning.advice import Advice
from chimed_lit.planning.memory import GIB, OPTIONS
from chimed_lit.planning.stage_plan import StagePlan


def _g(x: float) -> str:
    return f"{x / GIB:8.2f}"


def _count(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def _header(plan: StagePlan) -> str:
    s = plan.setup
    models = ", ".join(f"{role} {_count(shape.params)} ({how})" for role, how, shape in plan.models)
    batch = (
        f"rollout {s.rollout_batch} x {s.rollout_tokens} tokens, PPO minibatch {s.minibatch}"
        if s.kind == "ppo"
        else f"rollout {s.rollout_batch} x {s.rollout_tokens} tokens (prompts x group), "
        f"update minibatch {s.minibatch}"
        if s.kind == "grpo"
        else f"rollout {s.rollout_batch} x {s.rollout_tokens} tokens, micro-batch {s.micro_batch}"
        if s.kind == "rejection_sampling"
        else f"micro-batch {s.micro_batch} x {s.seq_len} tokens"
        + (" (x2: chosen and rejected)" if s.kind in ("reward", "dpo") else "")
    )
    return (
        f"== {s.stage} ({s.kind}): {models}\n"
        f"   {s.gpus_per_node} GPU(s) x {s.nodes} node(s), {s.strategy} {s.sharding.label}, "
        f"{batch}, global batch {s.global_batch}, activation checkpointing "
        f"{'on' if s.checkpointing else 'off'}, "
        f"{'fused' if s.fused_attention else 'eager'} attention"
    )


def stage_text(plan: StagePlan, advice: Advice) -> str:
    """The table of one stage, as `chimed-lit plan` prints it."""
    out = [_header(plan), "", "   configured, GiB per GPU"]
    for line in plan.lines:
        tag = "" if line.phase == "persistent" else f"  [{line.phase}]"
        out.append(f"   {line.label:<52}{_g(line.bytes)}{tag}")
    out.append(f"   {'peak (persistent + ' + plan.peak_phase + ')':<52}{_g(plan.peak)}")
    out += ["", "   model states by sharding option, GiB per GPU"]
    labels = [o.label for o in OPTIONS]
    out.append(
        f"   {'option':>28}"
        + "".join(f"{lab:>22}" for lab in ["trained", "frozen", "DeepSpeed's estimate"])
    )
    for lab in labels:
        ds = plan.deepspeed.get(lab)
        mark = " <" if lab == plan.setup.sharding.label else "  "
        out.append(
            "   "
            f"{lab + mark:>28}"
            f"{_g(plan.trained[lab]):>22}"
            f"{_g(plan.frozen[lab]):>22}" + (f"{_g(ds):>22}" if ds is not None else f"{'-':>22}")
        )
    out += [
        "",
        "   activations, GiB per GPU: "
        + ", ".join(f"{k} {v / GIB:.2f}" for k, v in plan.activation_options.items()),
        "",
        f"   verdict: {advice.words()}",
    ]
    return "\n".join(out)


def stage_json(plan: StagePlan, advice: Advice) -> dict[str, Any]:
    """The same content as numbers (GiB per GPU), for scripts."""
    s = plan.setup
    gib = lambda x: round(x / GIB, 3)  # noqa: E731
    return {
        "stage": s.stage,
        "kind": s.kind,
        "gpus": s.gpus,
        "strategy": s.strategy,
        "sharding": s.sharding.label,
        "micro_batch": s.micro_batch,
        "seq_len": s.seq_len,
        "global_batch": s.global_batch,
        "checkpointing": s.checkpointing,
        "models": [
            {
                "role": r,
                "how": h,
                "params": sh.params,
                "largest_layer_params": sh.largest_layer_params,
            }
            for r, h, sh in plan.models
        ],
        "lines": [{"label": x.label, "gib": gib(x.bytes), "phase": x.phase} for x in plan.lines],
        "peak_gib": gib(plan.peak),
        "peak_phase": plan.peak_phase,
        "model_states_gib": {
            k: {
                "trained": gib(v),
                "frozen": gib(plan.frozen[k]),
                "deepspeed": gib(plan.deepspeed[k]) if k in plan.deepspeed else None,
            }
            for k, v in plan.trained.items()
        },
        "activations_gib": {k: gib(v) for k, v in plan.activation_options.items()},
        "fits": advice.fits,
        "budget_gib": gib(advice.budget),
        "verdict": advice.words(),
        "changes": [{"change": c.words, "overrides": list(c.overrides)} for c in advice.changes],
        "peak_after_gib": gib(advice.peak_after) if advice.peak_after is not None else None,
        "gpus_needed": advice.gpus_needed,
    }
