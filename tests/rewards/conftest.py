"""Fixtures for the reward tests: one torch thread, a tiny random causal LM and reward model."""

from __future__ import annotations

import pytest

from tests.conftest import TINY_ARCH


@pytest.fixture(autouse=True)
def _one_thread(one_thread) -> None:
    """Every test here on one torch thread (tests/conftest.py): the machine is shared."""


@pytest.fixture(scope="session")
def tiny_lm(demo_tok):
    """A random-init tiny LLaMA causal LM (eval mode), seeded."""
    import torch

    from chimed_lit.models.factory import ModelFactory

    torch.manual_seed(0)
    return ModelFactory(arch=TINY_ARCH).load_causal_lm(demo_tok).eval()


@pytest.fixture(scope="session")
def tiny_rm(demo_tok):
    """A random-init tiny LLaMA reward model (`AutoModelForSequenceClassification`), seeded."""
    import torch

    from chimed_lit.models.factory import ModelFactory

    torch.manual_seed(1)
    return ModelFactory(arch=TINY_ARCH).load_reward_model(demo_tok).eval()
