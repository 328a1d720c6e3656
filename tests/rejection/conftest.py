"""Fixtures for the rejection-sampling tests: one CPU thread (the machine is shared; tiny matmuls
only slow down with more threads)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread) -> None:
    """Every test here on one torch thread (tests/conftest.py)."""
