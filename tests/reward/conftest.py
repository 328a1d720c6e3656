"""Fixtures for the reward-model tests: a JSONL writer, a DataModule factory, tiny reward models
and one CPU thread (the machine is shared; tiny matmuls only slow down with more threads)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import TINY_ARCH


@pytest.fixture(autouse=True)
def _one_thread(one_thread) -> None:
    """Every test here on one torch thread (tests/conftest.py)."""


@pytest.fixture
def write_jsonl(tmp_path: Path) -> Callable[..., str]:
    def write(records: list[dict[str, Any]], name: str = "pairs.jsonl") -> str:
        path = tmp_path / name
        path.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
        )
        return str(path)

    return write


@pytest.fixture
def make_pref_dm(demo_tok, tmp_path: Path) -> Callable[..., Any]:
    """A `PreferenceDataModule` over `train_files`, set up, no validation split unless asked."""
    from chimed_lit.data.preference import PreferenceDataModule

    def make(
        train_files: list[str] | None, tokenizer: Any = None, setup: bool = True, **knobs: Any
    ):
        knobs.setdefault("val_fraction", 0.0)
        dm = PreferenceDataModule(
            tokenizer=tokenizer or demo_tok,
            train_files=train_files,
            cache_dir=str(tmp_path / "cache"),
            **knobs,
        )
        if setup:
            dm.setup("fit")
        return dm

    return make


@pytest.fixture(scope="session")
def eos_pad_tok(demo_tok):
    """The demo tokenizer padding with its EOS, as many LLaMA-family checkpoints do."""
    tok = copy.deepcopy(demo_tok)
    tok.pad_token = tok.eos_token
    assert tok.pad_token_id == tok.eos_token_id
    return tok


@pytest.fixture(scope="session")
def tiny_reward_model() -> Callable[..., torch.nn.Module]:
    """A random-init tiny LLaMA reward model (`ModelFactory.load_reward_model`), seeded."""
    from chimed_lit.models.factory import ModelFactory

    def build(tokenizer: Any, seed: int = 0, **arch: Any) -> torch.nn.Module:
        torch.manual_seed(seed)
        return ModelFactory(arch={**TINY_ARCH, **arch}).load_reward_model(tokenizer).eval()

    return build
