"""Masked reductions over token tensors.

Rollout and preference batches are right- (or left-) padded, so every statistic used by the
RL losses must ignore padding. A mask is read as boolean: any nonzero entry marks a valid
position. Padding values are selected away with ``torch.where`` rather than multiplied by 0,
so NaN/inf garbage in padded slots can never leak into a result or its gradient.

Empty-mask policy:

* ``masked_sum`` / ``masked_mean`` return 0 for an empty mask (or an empty row when ``dim`` is
  given). This keeps losses host-sync free and lets a batch contain a zero-length row.
* ``masked_var`` / ``masked_whiten`` raise ``ValueError`` when there are too few valid
  positions (0, or 1 for the unbiased estimate): a variance from no data is a bug upstream,
  and whitening by it would silently produce garbage. This check synchronises with the host,
  which is acceptable because whitening runs once per rollout batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["masked_count", "masked_mean", "masked_sum", "masked_var", "masked_whiten"]

_Dim = int | tuple[int, ...] | None


def _as_bool(mask: Tensor, like: Tensor) -> Tensor:
    if mask.shape != like.shape:
        mask = mask.expand_as(like)
    return mask.bool() if mask.dtype != torch.bool else mask


def masked_sum(x: Tensor, mask: Tensor, dim: _Dim = None) -> Tensor:
    """Sum of ``x`` over positions where ``mask`` is nonzero (0 where nothing is valid)."""
    m = _as_bool(mask, x)
    kept = torch.where(m, x, torch.zeros((), dtype=x.dtype, device=x.device))
    return kept.sum() if dim is None else kept.sum(dim=dim)


def masked_count(mask: Tensor, like: Tensor, dim: _Dim = None) -> Tensor:
    """Number of valid positions (as ``like``'s dtype), globally or along ``dim``."""
    m = _as_bool(mask, like).to(like.dtype)
    return m.sum() if dim is None else m.sum(dim=dim)


def masked_mean(x: Tensor, mask: Tensor, dim: _Dim = None) -> Tensor:
    """Mean of ``x`` over valid positions; 0 for an empty mask (or an empty row with ``dim``).

    Token-level mean: with ``dim=None`` every valid token in the batch has equal weight.
    """
    total = masked_sum(x, mask, dim)
    count = masked_count(mask, x, dim)
    return total / count.clamp(min=1)


def masked_var(x: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """Variance of ``x`` over all valid positions (a scalar).

    Raises ``ValueError`` if the mask has no valid position, or only one when ``unbiased``.
    """
    count = masked_count(mask, x)
    n = int(count.item())
    if n == 0 or (unbiased and n < 2):
        need = 2 if unbiased else 1
        raise ValueError(f"masked_var needs at least {need} valid position(s) in the mask, got {n}")
    mean = masked_mean(x, mask)
    var = masked_sum((x - mean) ** 2, mask) / count
    if unbiased:
        var = var * (count / (count - 1))
    return var


def masked_whiten(x: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """Normalise ``x`` to mean 0 / unbiased variance 1 over the valid positions.

    Used on PPO advantages so the policy step size does not depend on the reward scale.
    With ``shift_mean=False`` the original mean is added back (only the scale is normalised).
    Positions outside the mask are returned untouched (their original values).
    Raises ``ValueError`` on fewer than 2 valid positions (see module docstring).
    """
    mean = masked_mean(x, mask)
    var = masked_var(x, mask, unbiased=True)
    whitened = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return torch.where(_as_bool(mask, x), whitened, x)
