"""Tests for chimed_lit.losses.masked (masked reductions and advantage whitening)."""

import math

import pytest
import torch

from chimed_lit.losses.masked import masked_mean, masked_sum, masked_var, masked_whiten

X = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
M = torch.tensor([[1, 0, 1], [0, 0, 0]])


def test_masked_sum_and_mean_by_hand() -> None:
    """Valid entries are 1 and 3: sum 4, mean 2; row 1 is empty -> defined 0."""
    assert masked_sum(X, M).item() == pytest.approx(4.0)
    assert masked_mean(X, M).item() == pytest.approx(2.0)
    torch.testing.assert_close(masked_sum(X, M, dim=1), torch.tensor([4.0, 0.0]))
    torch.testing.assert_close(masked_mean(X, M, dim=1), torch.tensor([2.0, 0.0]))
    # column-wise: col0 -> 1/1, col1 -> empty -> 0, col2 -> 3/1
    torch.testing.assert_close(masked_mean(X, M, dim=0), torch.tensor([1.0, 0.0, 3.0]))


def test_masked_mean_empty_mask_is_zero_and_ignores_nan_padding() -> None:
    """Empty mask gives 0 (documented); NaN in padding neither leaks into value nor grad."""
    assert masked_mean(X, torch.zeros_like(M)).item() == 0.0
    x = torch.tensor([2.0, float("nan"), 4.0], requires_grad=True)
    out = masked_mean(x, torch.tensor([True, False, True]))
    assert out.item() == pytest.approx(3.0)
    out.backward()
    torch.testing.assert_close(x.grad, torch.tensor([0.5, 0.0, 0.5]))


def test_masked_var_by_hand() -> None:
    """Entries {1, 3}, mean 2: squared deviations 1 + 1 = 2 -> biased 2/2 = 1, unbiased 2/1 = 2."""
    assert masked_var(X, M, unbiased=False).item() == pytest.approx(1.0)
    assert masked_var(X, M, unbiased=True).item() == pytest.approx(2.0)


def test_masked_var_rejects_too_few_positions() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        masked_var(X, torch.zeros_like(M), unbiased=False)
    one = torch.tensor([[1, 0, 0], [0, 0, 0]])
    with pytest.raises(ValueError, match="at least 2"):
        masked_var(X, one, unbiased=True)
    with pytest.raises(ValueError):
        masked_whiten(X, torch.zeros_like(M))


def test_masked_whiten_mean0_var1_and_untouched_outside() -> None:
    """Valid values 1..6 (padding 100, -50): mean 3.5, unbiased var = 17.5 / 5 = 3.5.

    So whitened(1) = (1 - 3.5) / sqrt(3.5) = -1.33631; padded slots keep 100 and -50.
    """
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0], [4.0, 5.0, 6.0, -50.0]])
    m = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 0]])
    w = masked_whiten(x, m)
    assert w[0, 0].item() == pytest.approx((1 - 3.5) / math.sqrt(3.5), rel=1e-6)
    assert w[1, 2].item() == pytest.approx((6 - 3.5) / math.sqrt(3.5), rel=1e-6)
    assert masked_mean(w, m).item() == pytest.approx(0.0, abs=1e-6)
    assert masked_var(w, m).item() == pytest.approx(1.0, rel=1e-6)
    assert w[0, 3].item() == 100.0 and w[1, 3].item() == -50.0


def test_masked_whiten_without_mean_shift_keeps_mean() -> None:
    """shift_mean=False rescales only: mean stays 3.5, unbiased variance becomes 1."""
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0], [4.0, 5.0, 6.0, -50.0]])
    m = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 0]])
    w = masked_whiten(x, m, shift_mean=False)
    assert masked_mean(w, m).item() == pytest.approx(3.5, rel=1e-6)
    assert masked_var(w, m).item() == pytest.approx(1.0, rel=1e-6)
    assert w[0, 0].item() == pytest.approx((1 - 3.5) / math.sqrt(3.5) + 3.5, rel=1e-6)
