"""DAPO's soft overlong penalty (Yu et al. 2025, eq. 13), against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from chimed_lit.losses.overlong import overlong_penalty


def test_soft_penalty_ramps_over_the_last_buffer_tokens():
    # L_max = 10, L_cache = 4: no penalty up to 6 tokens, then (6 - L) / 4, -1 past 10
    lengths = torch.tensor([0, 6, 7, 8, 10, 11])
    got = overlong_penalty(lengths, max_length=10, buffer=4)
    assert got.tolist() == pytest.approx([0.0, 0.0, -0.25, -0.5, -1.0, -1.0])


@pytest.mark.parametrize("buffer", [0, -1, 11])
def test_buffer_outside_one_to_max_length_is_refused(buffer):
    with pytest.raises(ValueError, match="overlong buffer"):
        overlong_penalty(torch.tensor([3]), max_length=10, buffer=buffer)
