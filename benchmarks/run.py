"""chimed-lit against TRL, side by side on this machine: `python benchmarks/run.py [--quick]`.

For each stage the same model init, data (identical token ids), batch, sequence length,
precision and steps go to chimed-lit (`chimed-lit fit`, the real Lightning path) and to TRL at
its defaults and at its fastest documented settings; PPO goes to trl 1.12.0's PPOTrainer (own
venv, see peer_env.py) at equal response length and PPO epochs; GRPO (`stage.algorithm=grpo`,
row `grpo`) to trl 1.16's GRPOTrainer at equal prompts (token ids, and per step the same
prompts), group size, response length, update epochs, KL and precision. Sides alternate (ours, TRL,
ours, TRL ...), each in a fresh subprocess; the table shows medians over repeats, and MFU is
against the matmul peak measured in this run. Results go to benchmarks/results.json, with the
load average seen during each measurement (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import flops, report  # noqa: E402 (after the sys.path line above)
from benchmarks.workload import rollout_order  # noqa: E402

UNITS = {
    "pretrain": "tokens/s",
    "sft": "tokens/s",
    "reward": "pairs/s",
    "dpo": "pairs/s",
    "rlhf": "prompts/s",
    "grpo": "prompts/s",
}
# stages whose TRL defaults turn gradient checkpointing on: ours is measured with it on too
# (`model.gradient_checkpointing=true`), the memory-for-time trade a user makes with one switch
CHECKPOINTING_ROWS = ("pretrain", "sft", "dpo")
PEER_MODES = {
    "pretrain": ("default", "fastest"),
    "sft": ("default", "fastest"),
    "reward": ("default", "fastest"),
    "dpo": ("default", "fastest"),
    "rlhf": ("default",),
    "grpo": ("default", "fastest"),
}
STAGES = ("pretrain", "sft", "reward", "dpo", "rlhf", "grpo")


def grpo_plan(group_size: int, max_new_tokens: int) -> dict[str, Any]:
    """The GRPO row's settings, the same on both sides: `batch` prompts per step, each sampled
    `group_size` times up to `max_new_tokens`; one update over the whole rollout per step
    (`update_epochs` 1, no minibatches); KL off (`kl_coef` 0: neither side builds a reference)."""
    return {
        "group_size": group_size,
        "max_new_tokens": max_new_tokens,
        "update_epochs": 1,
        "kl_coef": 0.0,
    }


def plan(quick: bool, cuda: bool) -> dict[str, Any]:
    """What to run: sizes, lengths, steps, repeats (quick: a few minutes; full: under 30)."""
    if cuda:
        return {
            "size": "1B",
            "seq_len": 1024,
            "batch": 8,
            "steps": 12,
            "warmup": 3,
            "repeats": 3,
            "ppo": {"response_length": 128, "ppo_epochs": 2, "minibatch": 8},
            "grpo": grpo_plan(group_size=8, max_new_tokens=128),
            "scaling_seq": [256, 512, 1024, 2048],
            "scaling_size": ["100M", "1B"],
            "mfu_check": ("1B", 1024),
            "scaling_steps": 8,
            "scaling_warmup": 2,
            "dtype": "bfloat16",
        }
    if quick:
        return {
            "size": "2M",
            "seq_len": 256,
            "batch": 8,
            "steps": 6,
            "warmup": 2,
            "repeats": 1,
            "ppo": {"response_length": 16, "ppo_epochs": 2, "minibatch": 8},
            "grpo": grpo_plan(group_size=4, max_new_tokens=16),
            "scaling_seq": [256, 512],
            "scaling_size": [],
            "mfu_check": ("30M", 512),
            "scaling_steps": 4,
            "scaling_warmup": 1,
            "dtype": "float32",
        }
    return {
        "size": "7M",
        "seq_len": 512,
        "batch": 8,
        "steps": 10,
        "warmup": 3,
        "repeats": 3,
        "ppo": {"response_length": 32, "ppo_epochs": 2, "minibatch": 8},
        "grpo": grpo_plan(group_size=8, max_new_tokens=32),
        "scaling_seq": [256, 512, 1024, 2048],
        "scaling_size": ["7M", "30M", "100M"],
        "mfu_check": ("30M", 512),
        "scaling_steps": 6,
        "scaling_warmup": 2,
        "dtype": "float32",
    }


def _env(threads: int) -> dict[str, str]:
    env = dict(
        os.environ,
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        HF_DATASETS_DISABLE_PROGRESS_BARS="1",
        TRANSFORMERS_VERBOSITY="error",
        WANDB_MODE="disabled",
        TOKENIZERS_PARALLELISM="false",
        PYTHONWARNINGS="ignore",
    )
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run_worker(
    python: str, module: str, spec: dict[str, Any], threads: int, log_dir: Path
) -> dict[str, Any]:
    """One measurement in a fresh process; its JSON result, plus the load average around it."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        spec_file, out_file = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_file.write_text(json.dumps(spec))
        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        log = log_dir / f"{spec['stage']}-{spec.get('side', 'x')}-{int(time.time())}.log"
        with log.open("w") as fh:
            proc = subprocess.run(
                [python, "-m", module, str(spec_file), str(out_file)],
                cwd=ROOT,
                env=_env(threads),
                stdout=fh,
                stderr=subprocess.STDOUT,
            )
        result = json.loads(out_file.read_text()) if out_file.is_file() else {}
    result.update(wall_s=time.perf_counter() - t0, load=[load_before, os.getloadavg()[0]])
    if proc.returncode != 0 or "elapsed_s" not in result:
        result["error"] = result.get("error") or f"exit {proc.returncode}, see {log}"
    return result


def rate_and_mfu(
    stage: str, res: dict[str, Any], arch: dict[str, Any], peak: float | None
) -> dict[str, Any]:
    """Per-second rate in the stage's unit and MFU (token stages) from a worker's counts."""
    if res.get("error"):
        return {**res, "rate": None, "mfu": None}
    t = res["elapsed_s"]
    out = dict(res, step_s=t / res["timed_steps"])
    if stage in ("pretrain", "sft"):
        out["rate"] = res["tokens"] / t
        f = flops.train_flops(arch, res["tokens"], res["pairs"], head="lm")
    elif stage == "reward":
        out["rate"] = res["items"] / t
        f = flops.train_flops(arch, res["tokens"], res["pairs"], head="score")
    elif stage == "dpo":
        out["rate"] = res["items"] / t
        f = flops.train_flops(arch, res["tokens"], res["pairs"], head="lm", forward_only_copies=1)
    else:
        out["rate"] = res["items"] / t
        gen = res.get("extra", {}).get("time_generate")
        out["generate_frac"] = gen / t if gen is not None else None
        gen_tokens = res.get("extra", {}).get("gen_tokens")  # sampled response tokens
        if gen_tokens is not None and res["items"]:
            out["gen_tokens_per_s"] = gen_tokens / t
            out["gen_tokens_per_prompt"] = gen_tokens / res["items"]
        f = None
    cpu = res.get("cpu_s")
    out["rate_cpu"] = out["rate"] * t / cpu if cpu else None  # per CPU-second of the worker
    out["tokens_per_s"] = res["tokens"] / t if res.get("tokens") else None
    out["mfu"] = report.mfu(f / t, peak) if f is not None else None
    return out


def measure_peak(python: str, threads: int, dtype: str, device: str) -> float:
    # a GPU reaches its matmul peak only on large squares (1,024 x 1,024 is launch-bound there)
    n = "8192" if device == "cuda" else "1024"
    out = subprocess.run(
        [python, "-m", "benchmarks.peak", dtype, n, device],
        cwd=ROOT,
        env=_env(threads),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["flops"]


def compare(
    stages: list[str],
    p: dict[str, Any],
    work: dict[str, Any],
    args,
    peak: float,
    log_dir: Path,
    device: str,
) -> dict[str, Any]:
    from benchmarks import peer_env

    results: dict[str, Any] = {}
    base = {
        "workload": work,
        "batch": p["batch"],
        "seq_len": p["seq_len"],
        "steps": p["steps"],
        "warmup": p["warmup"],
        "ppo": p["ppo"],
        "grpo": p["grpo"],
        "device": device,
        "lr": 1e-3,
    }
    for stage in stages:
        sides: list[tuple[str, str, str, dict]] = [("ours", sys.executable, "benchmarks.ours", {})]
        if stage == "sft":  # the shipped SFT config pads; packing is one switch away
            sides.append(("ours_packed", sys.executable, "benchmarks.ours", {"pack": True}))
        if stage in CHECKPOINTING_ROWS:  # TRL's defaults checkpoint activations: so can we
            sides.append(
                (
                    "ours_ckpt",
                    sys.executable,
                    "benchmarks.ours",
                    {"extra_overrides": ["model.gradient_checkpointing=true"]},
                )
            )
        if stage == "rlhf":  # the opt-in compiled decode step (its compile falls in the warmup)
            sides.append(
                (
                    "ours_compiled",
                    sys.executable,
                    "benchmarks.ours",
                    {"extra_overrides": ["stage.module.sampling.compile=true"]},
                )
            )
        if not args.no_peer:
            python = str(peer_env.ensure()) if stage == "rlhf" else sys.executable
            tag = "trl112" if stage == "rlhf" else "trl"
            for mode in PEER_MODES[stage]:
                name = f"{tag}_{'default' if mode == 'default' else 'fastest'}"
                sides.append((name, python, "benchmarks.peer", {"mode": mode}))
        runs: dict[str, list] = {name: [] for name, *_ in sides}
        for rep in range(p["repeats"]):
            for name, python, module, extra in sides:
                spec = {**base, **extra, "stage": stage, "side": name, "seed": rep}
                if stage == "grpo":  # TRL samples for our loader's prompts, step by step
                    spec["prompt_order"] = rollout_order(work["mcq"]["count"], rep)
                res = rate_and_mfu(
                    stage,
                    run_worker(python, module, spec, args.threads, log_dir),
                    work["arch"],
                    peak,
                )
                runs[name].append(res)
                print(
                    f"  {stage:<8} {name:<13} rep {rep}: rate={res.get('rate')} "
                    f"load={res['load']} {res.get('error') or ''}",
                    flush=True,
                )
        results[stage] = {
            "unit": UNITS[stage],
            "sides": report.summarise(runs),
            "runs": runs,
            "peak_flops": peak,
            "date": time.strftime("%H:%M UTC", time.gmtime()),
        }
        same = report.same_prompts(runs)
        if same is not None:
            results[stage]["same_prompts"] = same
            if not same:
                print(f"  WARNING: {stage}: the sides sampled for different prompts", flush=True)
        if stage in report.NOTES:
            results[stage]["notes"] = report.NOTES[stage]
    return results


def scaling(p: dict[str, Any], args, peak: float, log_dir: Path, device: str) -> list[dict]:
    """Cost of our pre-training step against sequence length (at `batch * seq_len` tokens per
    step, so steps stay comparable) and model size (at sequence 512, batch as planned)."""
    from benchmarks.workload import prepare

    points = [(p["size"], s) for s in p["scaling_seq"]]
    points += [(z, 512) for z in p["scaling_size"] if (z, 512) not in points]
    if p.get("mfu_check") and tuple(p["mfu_check"]) not in points:
        points.append(tuple(p["mfu_check"]))
    rows = []
    for size, seq in points:
        work = prepare(
            ROOT / "benchmarks" / ".work" / f"{size}-{seq}", size, seq, parts=("pretrain",)
        )
        batch = max(1, p["batch"] * p["seq_len"] // seq) if size == p["size"] else p["batch"]
        spec = {
            "workload": work,
            "batch": batch,
            "seq_len": seq,
            "steps": p["scaling_steps"],
            "warmup": p["scaling_warmup"],
            "device": device,
            "stage": "pretrain",
            "side": "ours",
        }
        res = rate_and_mfu(
            "pretrain",
            run_worker(sys.executable, "benchmarks.ours", spec, args.threads, log_dir),
            work["arch"],
            peak,
        )
        rows.append(
            {
                "size": size,
                "params": flops.total_params(work["arch"]),
                "seq_len": seq,
                "batch": batch,
                "step_s": res.get("step_s"),
                "tokens_per_s": res.get("rate"),
                "mfu": res.get("mfu"),
                "peak_rss_mb": res.get("peak_rss_mb"),
                "load": res["load"],
                "peak_flops": peak,
                "error": res.get("error"),
            }
        )
        print(
            f"  scaling {size:>5} seq {seq:>5}: {res.get('rate')} tok/s mfu={res.get('mfu')}",
            flush=True,
        )
    return rows


def format_scaling(rows: list[dict]) -> str:
    lines = [
        (
            f"{'size':>5} {'params':>11} {'seq':>5} {'batch':>5} {'s/step':>7} {'tokens/s':>9} "
            f"{'MFU':>6}"
        )
    ]
    for r in rows:
        step = "-" if r["step_s"] is None else f"{r['step_s']:.2f}"
        tps = "-" if r["tokens_per_s"] is None else f"{r['tokens_per_s']:.0f}"
        m = "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
        lines.append(
            f"{r['size']:>5} {r['params']:>11,} {r['seq_len']:>5} {r['batch']:>5} {step:>7} "
            f"{tps:>9} {m:>6}"
        )
    return "\n".join(lines)


def resummarise(path: Path) -> int:
    """Derived numbers again from the stored raw counts (after a merge or a report change)."""
    out = json.loads(path.read_text())
    arch = out["workload"]["arch"]
    for stage, entry in out["stages"].items():
        peak = max(out["peak_flops"])
        entry["runs"] = {
            side: [rate_and_mfu(stage, r, arch, peak) for r in reps]
            for side, reps in entry["runs"].items()
        }
        entry["sides"] = report.summarise(entry["runs"])
    best = max(out["peak_flops"])
    for row in out.get("scaling", []):  # MFU against the best peak this run measured
        if row.get("mfu") is not None:
            row["mfu"] *= row.get("peak_flops", out["peak_flops"][0]) / best
            row["peak_flops"] = best
    path.write_text(json.dumps(out, indent=1))
    print(report.format_table(out["stages"]))
    print(report.format_variants(out["stages"]))
    print(report.format_rollouts(out["stages"]))
    print(report.format_notes(out["stages"]))
    print()
    print(report.markdown(out))
    if out.get("scaling"):
        print()
        print(format_scaling(out["scaling"]))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small model and few steps (minutes)")
    ap.add_argument(
        "--stages",
        default=",".join(STAGES),
        help=f"comma-separated rows to run, of {','.join(STAGES)} (e.g. --stages grpo)",
    )
    ap.add_argument("--steps", type=int, default=None, help="override the plan's steps per run")
    ap.add_argument("--warmup", type=int, default=None, help="override the plan's warmup steps")

    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-peer", action="store_true", help="measure chimed-lit only")
    ap.add_argument("--no-scaling", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results.json"))
    ap.add_argument(
        "--merge",
        action="store_true",
        help="update the stages (and scaling rows) of an existing --out file",
    )
    ap.add_argument(
        "--resummarise",
        action="store_true",
        help="recompute rates, ratios and the table of --out from its raw runs",
    )
    args = ap.parse_args(argv)
    if args.resummarise:
        return resummarise(Path(args.out))

    os.environ.update(
        {
            k: v
            for k, v in _env(args.threads).items()
            if k.startswith(("HF_", "TRANSFORMERS_", "TOKENIZERS_"))
        }
    )
    import torch

    from benchmarks.workload import prepare

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    p = plan(args.quick, cuda)
    if args.repeats:
        p["repeats"] = args.repeats
    for key in ("steps", "warmup"):
        if getattr(args, key) is not None:
            p[key] = getattr(args, key)
    stages = [s for s in args.stages.split(",") if s]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        ap.error(f"--stages: unknown row(s) {','.join(unknown)}; use some of {','.join(STAGES)}")
    if "dpo" in stages and not (ROOT / "src" / "chimed_lit" / "modules" / "dpo.py").is_file():
        stages.remove("dpo")
    log_dir = ROOT / "benchmarks" / ".work" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    print(
        f"device={device} size={p['size']} seq={p['seq_len']} batch={p['batch']} "
        f"steps={p['steps']} repeats={p['repeats']} threads={args.threads} "
        f"load={os.getloadavg()}",
        flush=True,
    )
    work = prepare(
        ROOT / "benchmarks" / ".work" / f"{p['size']}-{p['seq_len']}", p["size"], p["seq_len"]
    )
    peaks = [measure_peak(sys.executable, args.threads, p["dtype"], device)]
    print(f"matmul peak {peaks[0] / 1e9:.1f} GFLOP/s ({p['dtype']})", flush=True)
    results = compare(stages, p, work, args, max(peaks), log_dir, device)
    rows = [] if args.no_scaling else scaling(p, args, max(peaks), log_dir, device)
    peaks.append(measure_peak(sys.executable, args.threads, p["dtype"], device))
    out = {
        "plan": p,
        "device": device,
        "threads": args.threads,
        "peak_flops": peaks,
        "workload": {k: v for k, v in work.items() if k not in ("init", "reward_init")},
        "params": flops.total_params(work["arch"]),
        "stages": results,
        "scaling": rows,
        "loadavg_end": os.getloadavg(),
        "cpu_count": os.cpu_count(),
        "elapsed_s": round(time.time() - started, 1),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    if args.merge and Path(args.out).is_file():
        previous = json.loads(Path(args.out).read_text())
        previous["stages"].update(results)
        previous["peak_flops"] = previous["peak_flops"] + out["peak_flops"]
        previous["scaling"] = rows or previous.get("scaling", [])
        previous.setdefault("merged_runs", []).append(
            {k: out[k] for k in ("date", "peak_flops", "loadavg_end", "elapsed_s")}
        )
        out, results = previous, previous["stages"]
    Path(args.out).write_text(json.dumps(out, indent=1))
    print()
    print(report.format_table(results))
    print(report.format_variants(results))
    print(report.format_rollouts(results))
    print(report.format_notes(results))
    if rows:
        print()
        print(format_scaling(rows))
    print(
        f"\nmatmul peak {max(peaks) / 1e9:.1f} GFLOP/s; load average at end "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; wrote {args.out} "
        f"in {out['elapsed_s']:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
