"""Fixtures for the LoRA tests: tiny saved SFT and reward model dirs, composed configs, and one
CPU thread (the machine is shared; tiny matmuls only slow down with more threads)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.dpo.conftest import (  # noqa: F401 (fixtures: pytest finds them by name)
    TINY_ARCH,
    _one_thread,
    dpo_pipeline,
    fit_once,
)


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory, demo_tok) -> dict[str, Path]:
    """A random tiny LLaMA saved as an SFT dir and, with a scalar head, as a reward dir."""
    from chimed_lit.models.factory import ModelFactory

    root = tmp_path_factory.mktemp("lora_models")
    torch.manual_seed(0)
    factory = ModelFactory(arch=TINY_ARCH)
    lm = factory.load_causal_lm(demo_tok)
    lm.save_pretrained(root / "sft")
    demo_tok.save_pretrained(root / "sft")
    rm = factory.load_reward_model(demo_tok, pretrained=str(root / "sft"))
    torch.nn.init.normal_(rm.score.weight, std=0.5)
    rm.config.reward_mean, rm.config.reward_std = 0.0, 1.0
    rm.save_pretrained(root / "reward")
    demo_tok.save_pretrained(root / "reward")
    return {"sft": root / "sft", "reward": root / "reward"}


@pytest.fixture
def compose_fit() -> Callable[..., object]:
    """The composed `fit` config for some overrides."""
    from hydra import compose, initialize_config_module

    def make(*overrides: str):
        with initialize_config_module("chimed_lit.configs", version_base="1.3"):
            return compose("fit", overrides=list(overrides))

    return make


@pytest.fixture(scope="session")
def lora_sft_run(
    tmp_path_factory: pytest.TempPathFactory, _session_cache: Path
) -> tuple[Path, Path]:
    """`fit stage=sft lora=on` on the tiny default, started from the DPO pipeline's pretrain
    output (trained once per session); returns (output dir, the base model dir)."""
    base = dpo_pipeline(tmp_path_factory) / "pretrain" / "hf"
    out = fit_once(
        tmp_path_factory,
        "lora_sft_run",
        "stage=sft",
        "lora=on",
        f"model.pretrained={base}",
        "trainer.max_steps=60",
    )
    return out, base
