"""Turning measurements into the comparison: medians, ratios to the peer, MFU, the table."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

PEER_COLUMNS = ("trl_default", "trl_fastest")
# printed under the table and stored with the row in results.json
NOTES = {
    "grpo": [
        (
            "ours: chimed-lit fit stage=rlhf stage.algorithm=grpo stage.reward=mcq "
            "data=mcq_demo; TRL: trl 1.16 GRPOTrainer (transformers generation; vLLM needs a GPU)"
        ),
        (
            "equal: init weights, prompts as token ids and the same prompts at every step, "
            "batch prompts x group size, max response tokens, 1 update per rollout, KL off (no "
            "reference), GRPO loss (sequence mean of token means, group-std advantages), clip "
            "0.2, sampling at temperature 1, fp32"
        ),
        (
            "rewards: ours `mcq` (eval's strict answer parser), TRL an exact A-E letter-set "
            "match (benchmarks/peer.py letter_reward); they parse differently but cost "
            "microseconds per response next to generating it"
        ),
        (
            "gen tok/s counts sampled response tokens (ours without the EOS, TRL with it); "
            "tok/prompt near group size x max tokens: neither side stopped early"
        ),
    ],
}


def median(values: Sequence[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(ours: float | None, peer: float | None) -> float | None:
    """How many times the peer's rate ours is (>1: we are faster); None if either is missing."""
    if ours is None or peer is None or peer <= 0:
        return None
    return ours / peer


def mfu(flops_per_s: float | None, peak_flops_per_s: float | None) -> float | None:
    if flops_per_s is None or not peak_flops_per_s:
        return None
    return flops_per_s / peak_flops_per_s


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per side: the median rate, MFU and split timings over its repeats, and the largest peak
    RSS any repeat reached."""
    out: dict[str, dict[str, Any]] = {}
    for side, reps in runs.items():
        ok = [r for r in reps if r.get("rate") is not None]
        row: dict[str, Any] = {
            "repeats": len(ok),
            "errors": [r["error"] for r in reps if r.get("error")],
        }
        for key in (
            "rate",
            "rate_cpu",
            "mfu",
            "generate_frac",
            "step_s",
            "first_step_s",
            "gen_tokens_per_s",
            "gen_tokens_per_prompt",
        ):
            row[key] = median([r.get(key) for r in ok])
        row["rates"] = [r["rate"] for r in ok]
        rss = [r["peak_rss_mb"] for r in ok if r.get("peak_rss_mb")]
        row["peak_rss_mb"] = max(rss) if rss else None
        gpu = [r["peak_gpu_mb"] for r in ok if r.get("peak_gpu_mb")]  # CUDA runs only
        row["peak_gpu_mb"] = max(gpu) if gpu else None
        out[side] = row
    ours = out.get("ours", {})
    peers = {side: row for side, row in out.items() if not side.startswith("ours")}
    for side, row in out.items():
        if side != "ours":
            row["ours_over_this"] = ratio(ours.get("rate"), row["rate"])
            row["ours_over_this_cpu"] = ratio(ours.get("rate_cpu"), row.get("rate_cpu"))
        if side.startswith("ours_"):  # a variant of our config: its own ratios to the peer
            row["over_peer"] = {peer: ratio(row["rate"], p["rate"]) for peer, p in peers.items()}
    return out


def same_prompts(runs: dict[str, list[dict[str, Any]]]) -> bool | None:
    """Whether every side's repeat r sampled for the same prompts at each step as our repeat r
    (the per-step `prompt_digests` the meters record); None when fewer than two sides have
    them. Steps past the shorter run are not compared."""
    ours = runs.get("ours") or []
    checked = False
    for side, reps in runs.items():
        if side == "ours":
            continue
        for mine, theirs in zip(ours, reps, strict=False):
            a, b = mine.get("prompt_digests"), theirs.get("prompt_digests")
            if not a or not b:
                continue
            checked = True
            if any(x != y for x, y in zip(a, b, strict=False)):
                return False
    return True if checked else None


def format_rollouts(results: dict[str, dict[str, Any]]) -> str:
    """RL rows that count sampled tokens: per side, prompts/s, generated tokens/s and per
    prompt (equal work shows as equal tokens per prompt), the generation share of the step
    time and peak RSS."""
    lines = []
    for stage, entry in results.items():
        sides = entry["sides"]
        if not any(row.get("gen_tokens_per_s") for row in sides.values()):
            continue
        lines.append(
            f"{'stage':<9} {'side':<14} {'prompts/s':>9} {'gen tok/s':>9} {'tok/prompt':>10} "
            f"{'generate':>8} {'RSS MB':>7}"
        )
        for side, row in sides.items():
            frac = row.get("generate_frac")
            lines.append(
                f"{stage:<9} {side:<14} {_fmt(row.get('rate'), '9.2f')} "
                f"{_fmt(row.get('gen_tokens_per_s'), '9.0f')} "
                f"{_fmt(row.get('gen_tokens_per_prompt'), '10.1f')} "
                f"{'-' if frac is None else f'{100 * frac:7.0f}%'} "
                f"{_fmt(row.get('peak_rss_mb'), '7.0f')}"
            )
        if entry.get("same_prompts") is not None:
            lines.append(
                f"{stage}: same prompts at every step on all sides: {entry['same_prompts']}"
            )
    return "\n".join(lines)


def format_notes(results: dict[str, dict[str, Any]]) -> str:
    """The notes stored with each row (what is held equal, what differs)."""
    return "\n".join(
        f"{stage}: {note}" for stage, entry in results.items() for note in entry.get("notes", [])
    )


def format_variants(results: dict[str, dict[str, Any]]) -> str:
    """Our config variants (packed SFT, gradient checkpointing, compiled decoding) against each
    peer side: rate ratio, peak RSS side by side, and the first step's time (a compile's cost)."""
    lines = []
    for stage, entry in results.items():
        sides = entry["sides"]
        for side, row in sides.items():
            for peer, x in (row.get("over_peer") or {}).items():
                lines.append(
                    f"{stage:<9} {side:<12} / {peer:<16} {_fmt(x, '5.2f')}x   RSS "
                    f"{_fmt(row.get('peak_rss_mb'), '.0f')} vs "
                    f"{_fmt(sides[peer].get('peak_rss_mb'), '.0f')} MB   first step "
                    f"{_fmt(row.get('first_step_s'), '.1f')} s"
                )
    return "\n".join(lines)


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """One line per (stage, side): rate, MFU, peak RSS, and ours divided by that side's rate,
    by wall time and by the workers' CPU time (steadier when other jobs share the cores)."""
    header = (
        f"{'stage':<9} {'side':<14} {'rate':>10} {'unit':<9} {'MFU':>6} {'RSS MB':>7} "
        f"{'ours/x':>7} {'per-CPU-s':>9}"
    )
    lines = [header, "-" * len(header)]
    for stage, entry in results.items():
        for side, row in entry["sides"].items():
            x, xc = row.get("ours_over_this"), row.get("ours_over_this_cpu")
            lines.append(
                f"{stage:<9} {side:<14} {_fmt(row.get('rate'), '10.1f')} {entry['unit']:<9} "
                f"{_fmt(None if row.get('mfu') is None else 100 * row['mfu'], '5.1f')}% "
                f"{_fmt(row.get('peak_rss_mb'), '7.0f')} {_fmt(x, '6.2f') + 'x' if x else '-':>7} "
                f"{_fmt(xc, '8.2f') + 'x' if xc else '-':>9}"
                + (f"  GPU {row['peak_gpu_mb']:.0f} MB" if row.get("peak_gpu_mb") else "")
            )
    return "\n".join(lines)


def markdown(results: dict[str, Any]) -> str:
    """The per-stage comparison as a Markdown table (README and docs/performance.md)."""
    lines = [
        "| stage | unit | side | rate | per CPU-s | MFU | peak RSS MB | ours / side (wall) | ours / side (CPU) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for stage, entry in results["stages"].items():
        for side, row in entry["sides"].items():
            m = row.get("mfu")
            x, xc = row.get("ours_over_this"), row.get("ours_over_this_cpu")
            lines.append(
                f"| {stage} | {entry['unit']} | {side} | {_fmt(row.get('rate'), '.2f')} | "
                f"{_fmt(row.get('rate_cpu'), '.2f')} | {'-' if m is None else f'{100 * m:.1f}%'} | "
                f"{_fmt(row.get('peak_rss_mb'), '.0f')} | {'-' if x is None else f'{x:.2f}x'} | "
                f"{'-' if xc is None else f'{xc:.2f}x'} |"
            )
    return "\n".join(lines)
