"""Counting the real work in a batch and timing steps, identically for both trainers.

A step's time runs from the end of the previous step to the end of this one, so data loading,
collation, logging and callbacks are inside it, as a user sees them. The first `warmup` steps
(allocator growth, lazy initialisation) are left out. Only end times are taken, because the
peers' loops (HF Trainer, TRL's PPO loop) report step ends reliably and Lightning does too.
"""

from __future__ import annotations

import hashlib
import json
import resource
import time
from pathlib import Path
from typing import Any

import torch


def segment_lengths(batch: dict[str, Any], pad_id: int) -> list[int]:
    """Lengths of the real (non-pad) documents in a batch: one per row of a padded batch
    (from `attention_mask`), or one per position-id reset of a packed / padding-free batch."""
    ids = batch["input_ids"]
    if "attention_mask" in batch and batch["attention_mask"] is not None:
        return [int(n) for n in batch["attention_mask"].sum(-1).tolist() if n]
    real = ids != pad_id
    if "position_ids" not in batch or batch["position_ids"] is None:
        return [int(n) for n in real.sum(-1).tolist() if n]
    out: list[int] = []
    for pos, keep in zip(batch["position_ids"].reshape(-1, ids.shape[-1]), real, strict=True):
        seg = torch.cumsum((pos == 0).long(), 0)
        out += [int(n) for n in torch.bincount(seg[keep]).tolist() if n]
    return out


def prompt_digest(prompts: list[list[int]]) -> str:
    """A short fingerprint of a step's prompts (token ids, in order): the RL rows compare
    each step's digest across the two trainers to show they sampled for the same prompts."""
    return hashlib.sha1(json.dumps([list(map(int, p)) for p in prompts]).encode()).hexdigest()[:12]


class StepMeter:
    """Accumulates (end time, tokens, causal pairs, items) per step; writes a JSON summary."""

    def __init__(self, path: str | Path, pad_id: int, warmup: int):
        self.path, self.pad_id, self.warmup = Path(path), pad_id, warmup
        self.ends: list[float] = []
        self.cpu: list[
            float
        ] = []  # process CPU time (all threads): less sensitive to other tenants
        self.tokens: list[int] = []
        self.pairs: list[int] = []
        self.items: list[int] = []
        self.extra: dict[str, list[float]] = {}
        self.digests: list[str] = []  # per step: prompt_digest of its prompts ("" if not noted)
        self._digest = ""
        self.rss_at_step_end = 0.0  # peak RSS when the last step ended (before any final save)
        self._pending = (0, 0, 0)
        self.started = time.perf_counter()

    def count(self, batch: dict[str, Any], items: int | None = None) -> None:
        """Add a batch to the current step (several for gradient accumulation)."""
        t, p, n = self._pending
        if "input_ids" in batch and torch.is_tensor(batch["input_ids"]):
            lengths = segment_lengths(batch, self.pad_id)
            t, p = t + sum(lengths), p + sum(x * (x + 1) // 2 for x in lengths)
            n += items if items is not None else len(lengths)
        else:
            n += items or 0
        self._pending = (t, p, n)

    def note_prompts(self, prompts: list[list[int]]) -> None:
        """Record the prompts (token ids) the current step samples for."""
        self._digest = prompt_digest(prompts)

    def step_end(self, **extra: float) -> None:
        if torch.cuda.is_initialized():  # kernels run asynchronously: a step ends when they do
            torch.cuda.synchronize()
        self.ends.append(time.perf_counter())
        self.cpu.append(time.process_time())
        self.rss_at_step_end = peak_rss_mb()
        t, p, n = self._pending
        self.tokens.append(t)
        self.pairs.append(p)
        self.items.append(n)
        for k, v in extra.items():
            self.extra.setdefault(k, []).append(float(v))
        self._pending = (0, 0, 0)
        self.digests.append(self._digest)
        self._digest = ""

    def summary(self) -> dict[str, Any]:
        w = min(self.warmup, max(len(self.ends) - 2, 0))
        if len(self.ends) - w < 2:
            return {"steps": len(self.ends), "error": "too few steps to time"}
        elapsed = self.ends[-1] - self.ends[w]
        sl = slice(w + 1, None)
        return {
            "steps": len(self.ends),
            "timed_steps": len(self.ends) - w - 1,
            "first_step_s": self.ends[0] - self.started,  # one-off costs (a compile) show here
            "elapsed_s": elapsed,
            "cpu_s": self.cpu[-1] - self.cpu[w],
            "tokens": sum(self.tokens[sl]),
            "pairs": sum(self.pairs[sl]),
            "items": sum(self.items[sl]),
            "extra": {k: sum(v[sl]) for k, v in self.extra.items()},
            "step_times": [
                round(b - a, 4) for a, b in zip(self.ends[:-1], self.ends[1:], strict=True)
            ],
            "peak_rss_mb": self.rss_at_step_end,
            "peak_rss_process_mb": peak_rss_mb(),
            "peak_gpu_mb": (
                torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_initialized() else None
            ),
            **({"prompt_digests": self.digests} if any(self.digests) else {}),
        }

    def write(self) -> None:
        self.path.write_text(json.dumps(self.summary()))


def peak_rss_mb() -> float:
    """This process's peak resident set size (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _lightning_callback():
    import lightning as L

    class LightningMeter(L.Callback):
        """Times chimed-lit's real Trainer steps; added as `+callbacks.bench_meter`."""

        def __init__(self, path: str, pad_id: int, warmup: int = 2):
            self.meter = StepMeter(path, pad_id, warmup)

        def setup(self, trainer, pl_module, stage: str) -> None:
            # first in line, so a step ends before other callbacks' end-of-batch work (the
            # end-of-training checkpoint, which the peers do not write, is not timed)
            trainer.callbacks.remove(self)
            trainer.callbacks.insert(0, self)

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            items = (
                len(batch["prompt_ids"])
                if "prompt_ids" in batch
                else (int(batch["n_pairs"]) if "n_pairs" in batch else None)
            )
            self.meter.count(batch, items)
            if "prompt_ids" in batch and "records" in batch:  # RL prompts (PPO, GRPO)
                self.meter.note_prompts(batch["prompt_ids"])

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            extra = {}
            stage = getattr(pl_module, "stage", "")
            gen = trainer.callback_metrics.get(f"{stage}/time_generate")
            if gen is not None:
                extra["time_generate"] = float(gen)
            length = trainer.callback_metrics.get(f"{stage}/response_length")
            if length is not None and "prompt_ids" in batch:  # mean response tokens (EOS excluded)
                responses = len(batch["prompt_ids"]) * int(getattr(pl_module, "group_size", 1))
                extra["gen_tokens"] = float(length) * responses
            self.meter.step_end(**extra)

        def on_train_end(self, trainer, pl_module) -> None:
            self.meter.write()

    return LightningMeter


def __getattr__(name: str):  # Lightning is imported only where it is installed (not the peer venv)
    if name == "LightningMeter":
        return _lightning_callback()
    raise AttributeError(name)
