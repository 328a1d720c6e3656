"""Fixtures for the DPO tests: one `chimed-lit fit stage=dpo` on the tiny default (pretrain and
SFT shortened: DPO's accuracy is measured against its own SFT reference, not against a good
model), tiny models for the module tests, and one CPU thread (the machine is shared)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY_ARCH


@pytest.fixture(autouse=True)
def _one_thread(one_thread) -> None:
    """Every test here on one torch thread (tests/conftest.py)."""


def fit_once(tmp_path_factory: pytest.TempPathFactory, name: str, *args: str) -> Path:
    """`chimed-lit fit ARGS` in-process on one thread (CSV logs), once per test session: a
    later call with the same name and arguments (from another test folder) reuses the output."""
    from hydra.core.global_hydra import GlobalHydra

    from chimed_lit.cli.main import main

    out = tmp_path_factory.getbasetemp() / name
    done = out / "fit_args.json"
    if done.is_file():
        assert json.loads(done.read_text()) == list(args), f"{name} ran with other arguments"
        return out
    out.mkdir(parents=True, exist_ok=True)
    saved, threads = sys.argv, torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = main(
            ["fit", *args, f"paths.output_dir={out}", "logger=csv", "trainer.log_every_n_steps=1"]
        )
    finally:
        sys.argv = saved
        torch.set_num_threads(threads)
        GlobalHydra.instance().clear()
    assert code == 0
    done.write_text(json.dumps(list(args)))
    return out


def dpo_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pretrain -> sft -> dpo on the tiny default, pretrain and SFT shortened."""
    return fit_once(
        tmp_path_factory,
        "dpo_run",
        "stage=dpo",
        "pretrain.trainer.max_steps=40",
        "sft.trainer.max_steps=60",
    )


@pytest.fixture(scope="session")
def dpo_run(tmp_path_factory: pytest.TempPathFactory, _session_cache: Path) -> Path:
    """The DPO pipeline's output dir."""
    return dpo_pipeline(tmp_path_factory)


@pytest.fixture
def pref_batch(demo_tok, tmp_path: Path):
    """One collated batch of 6 demo pairs (chosen rows, then rejected rows)."""
    from chimed_lit.data.preference import PreferenceDataModule

    dm = PreferenceDataModule(
        tokenizer=demo_tok,
        val_fraction=0.0,
        batch_size=6,
        max_length=96,
        cache_dir=str(tmp_path / "cache"),
    )
    dm.setup("fit")
    return next(iter(dm.train_dataloader()))


@pytest.fixture
def tiny_lm(demo_tok):
    """A seeded random-init tiny LLaMA causal LM (`ModelFactory.load_causal_lm`)."""
    from chimed_lit.models.factory import ModelFactory

    def build(seed: int = 0) -> torch.nn.Module:
        torch.manual_seed(seed)
        return ModelFactory(arch=TINY_ARCH).load_causal_lm(demo_tok)

    return build
