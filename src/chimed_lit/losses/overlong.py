"""DAPO's overlong reward shaping (Yu et al. 2025, "DAPO", section 3.4, eq. 13).

Responses cut off at the generation limit carry a reward for an answer that was never
finished; DAPO either masks them out of the loss ("overlong filtering") or shapes the reward
with a soft length penalty that ramps from 0 to -1 over the last `buffer` tokens before the
limit `max_length`:

    R_length(y) = 0                                  if |y| <= L_max - L_cache
                = ((L_max - L_cache) - |y|) / L_cache  if L_max - L_cache < |y| <= L_max
                = -1                                 if |y| > L_max
"""

from __future__ import annotations

import torch
from torch import Tensor


def overlong_penalty(lengths: Tensor, max_length: int, buffer: int) -> Tensor:
    """[N] the soft overlong penalty (<= 0) of responses of `lengths` tokens (DAPO eq. 13)."""
    if buffer <= 0 or buffer > max_length:
        raise ValueError(f"overlong buffer={buffer}: use 1..max_length ({max_length})")
    lengths = lengths.float()
    start = max_length - buffer
    ramp = (start - lengths) / buffer
    out = torch.where(lengths <= start, torch.zeros_like(lengths), ramp)
    return torch.where(lengths > max_length, torch.full_like(lengths, -1.0), out)
