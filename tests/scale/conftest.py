"""Fixtures for the scale-out tests: a saved tiny base model and a subprocess CLI runner.

Multi-process runs (DDP, FSDP2, DeepSpeed) go through a real `chimed-lit fit` in a subprocess:
Lightning re-launches that command for the other ranks, and a process group must not outlive
the test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory, demo_tok) -> Path:
    """A random-init tiny LLaMA + demo tokenizer saved as a HF dir (what `model.pretrained` takes)."""
    from chimed_lit.models.factory import ModelFactory

    out = tmp_path_factory.mktemp("tiny_base")
    factory = ModelFactory(
        arch={
            "hidden_size": 64,
            "intermediate_size": 176,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "max_position_embeddings": 512,
        }
    )
    import torch

    torch.manual_seed(0)
    factory.load_causal_lm(demo_tok).save_pretrained(out)
    demo_tok.save_pretrained(out)
    return out


# a short SFT on the demo data: 8 optimizer steps, validation every 4, short sequences
SFT_SHORT = [
    "stage=sft",
    "trainer.max_steps=8",
    "trainer.val_check_interval=4",
    "data.max_length=128",
    "data.batch_size=4",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "checkpoint.every_n_steps=1000",
]


def run_fit(out: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        PYTHONUNBUFFERED="1",
    )
    env.pop("LOCAL_RANK", None)
    cmd = [sys.executable, "-m", "chimed_lit.cli.main", "fit", f"paths.output_dir={out}", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def summary(out: Path, stage: str = "sft") -> dict:
    return json.loads((out / stage / "summary.json").read_text())


def val_losses(out: Path, stage: str = "sft") -> list[float]:
    """`<stage>/val_loss` at each validation during fit, in order, from the CSV log."""
    import csv

    rows = list(csv.DictReader((out / stage / "csv" / "metrics.csv").open()))
    return [float(r[f"{stage}/val_loss"]) for r in rows if r.get(f"{stage}/val_loss")]


def hf_weights(out: Path, stage: str = "sft") -> dict:
    from safetensors.torch import load_file

    return load_file(str(out / stage / "hf" / "model.safetensors"))


@pytest.fixture(scope="session")
def tiny_reward(tmp_path_factory: pytest.TempPathFactory, tiny_base, demo_tok) -> Path:
    """A scalar-head model on `tiny_base`'s backbone (random head): PPO's reward model/critic."""
    from chimed_lit.models.factory import ModelFactory

    out = tmp_path_factory.mktemp("tiny_reward")
    ModelFactory().load_reward_model(demo_tok, pretrained=str(tiny_base)).save_pretrained(out)
    demo_tok.save_pretrained(out)
    return out
