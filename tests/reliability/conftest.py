"""Shared pieces of the reliability tests: tiny upstream models, runs in a child process, CSV
metrics and exported weights to compare runs by."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

TINY_ARCH = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
    "tie_word_embeddings": False,
}
QUIET = (
    "logger=csv",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "trainer.val_check_interval=1000",
)


@pytest.fixture(autouse=True)
def _one_thread(one_thread) -> None:
    """Every test here on one torch thread (tests/conftest.py)."""


def child_env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    env.pop("WANDB_API_KEY", None)
    return env


def fit_in_process(out: Path, *args: str) -> Path:
    """`chimed-lit fit ARGS paths.output_dir=OUT` in this process on one torch thread (a
    module fixture's run the tests then read or copy); fails the fixture on a non-zero exit."""
    from hydra.core.global_hydra import GlobalHydra

    from chimed_lit.cli.main import main

    saved, threads = sys.argv, torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["fit", *args, f"paths.output_dir={out}"]) == 0
    finally:
        sys.argv = saved
        torch.set_num_threads(threads)
        GlobalHydra.instance().clear()
    return out


def run_child(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`chimed-lit ARGS` as a separate process (what a scheduler kills or signals)."""
    return subprocess.run(
        [sys.executable, "-m", "chimed_lit", *args],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def metrics(out: Path, stage: str, key: str, sub: str = "") -> dict[int, float]:
    """`key` per step from a stage's CSV log (`sub`: a nested stage dir, e.g. round0/)."""
    path = out / stage / sub / "csv" / "metrics.csv" if sub else out / stage / "csv" / "metrics.csv"
    rows = csv.DictReader(path.open())
    return {int(r["step"]): float(r[key]) for r in rows if r.get(key)}


def weights(hf_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(hf_dir / "model.safetensors")


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-6), k


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory, demo_tok) -> dict[str, Path]:
    """A 2-layer causal LM and a reward model (scalar head) saved as HF dirs: upstream stages
    for the sft, reward and rlhf runs, built in a second instead of by training."""
    from chimed_lit.models.factory import ModelFactory

    root = tmp_path_factory.mktemp("tiny_models")
    torch.manual_seed(0)
    factory = ModelFactory(arch=TINY_ARCH, cache_dir=os.environ["CHIMED_LIT_CACHE"])
    tok = factory.load_tokenizer()
    dirs = {"lm": root / "lm", "reward": root / "reward"}
    lm = factory.load_causal_lm(tok)
    likes_to_stop(lm, tok.eos_token_id)
    lm.save_pretrained(dirs["lm"])
    factory.load_reward_model(tok).save_pretrained(dirs["reward"])
    for d in dirs.values():
        tok.save_pretrained(d)
    return dirs


def likes_to_stop(lm: torch.nn.Module, eos: int, dim: int = 0) -> None:
    """Give a random LLaMA a steady EOS probability (about half its 12-token replies end), so sampled replies finish
    as a trained policy's do: hidden dimension `dim` carries a constant no layer writes to, and
    only the EOS row of the output head reads it."""
    with torch.no_grad():
        lm.model.embed_tokens.weight[:, dim] = 5.0
        for layer in lm.model.layers:
            layer.self_attn.o_proj.weight[dim] = 0.0
            layer.mlp.down_proj.weight[dim] = 0.0
        lm.lm_head.weight[:, dim] = 0.0
        lm.lm_head.weight[eos, dim] = 0.45
