"""Tests for the low-variance KL estimator (k3 bounded as verl's "low_var_kl"; the KL of GRPO,
Shao et al. 2024, DeepSeekMath eq. 4) and the GRPO KL loss term built with aggregate()."""

import math

import pytest
import torch

from chimed_lit.losses import aggregate, kl_k3, kl_low_var, kl_penalty


def test_equals_k3_inside_the_bounds() -> None:
    """logp = log 0.5, ref = log 0.25: log r = -log 2, r = 0.5 -> k3 = -0.5 + log 2 = 0.193147;
    log r = -5: k3 = e^-5 + 5 - 1 = 4.006738, d/dlogp = 1 - e^-5 = 0.993262."""
    assert kl_penalty(
        torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)]), "low_var"
    ).item() == pytest.approx(0.193147, rel=1e-5)
    logp = torch.tensor([5.0], dtype=torch.float64, requires_grad=True)
    ref = torch.tensor([0.0], dtype=torch.float64)
    kl = kl_low_var(logp, ref)
    assert kl.item() == pytest.approx(math.exp(-5) + 4, rel=1e-12)
    kl.backward()
    assert logp.grad.item() == pytest.approx(1 - math.exp(-5), rel=1e-12)
    g = torch.Generator().manual_seed(0)
    a, b = 0.5 * torch.randn(50, generator=g), 0.5 * torch.randn(50, generator=g)
    assert kl_k3(a, b).max().item() < 10  # no bound binds: the estimators agree
    torch.testing.assert_close(kl_low_var(a, b), kl_k3(a, b))


def test_result_is_clamped_to_ten_with_zero_gradient() -> None:
    """log r = 3: k3 = e^3 - 3 - 1 = 16.0855 -> 10. log r = -30 is first clamped to -20:
    e^-20 + 20 - 1 ~ 19 -> 10. log r = 1000: k3 overflows to inf; low_var stays 10."""
    ref = torch.tensor([3.0, -30.0, 1000.0], dtype=torch.float64)
    logp = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    assert kl_k3(logp.detach(), ref)[0].item() == pytest.approx(math.exp(3) - 4)
    assert math.isinf(kl_k3(logp.detach(), ref)[2].item())
    kl = kl_low_var(logp, ref)
    torch.testing.assert_close(kl.detach(), torch.full((3,), 10.0, dtype=torch.float64))
    kl.sum().backward()
    torch.testing.assert_close(logp.grad, torch.zeros(3, dtype=torch.float64))


def test_kl_penalty_knows_low_var() -> None:
    with pytest.raises(ValueError, match="k1, k2, k3, low_var"):
        kl_penalty(torch.zeros(1), torch.zeros(1), "low_var_kl")  # type: ignore[arg-type]


def test_grpo_kl_loss_term_by_hand() -> None:
    """The module's KL term: aggregate(kl_penalty(logp, ref, est), mask, mode) * beta.

    log r per valid token: row 0 [log 2, 0], row 1 [-log 2] (rest padding):
    k3 = [2 - log 2 - 1, 0] = [0.306853, 0] and [0.5 + log 2 - 1] = [0.193147]; sum = 0.5.
    token_mean = 0.5 / 3; seq_mean_token_mean = (0.306853 / 2 + 0.193147) / 2 = 0.173287.
    """
    logp = torch.zeros(2, 3)
    ref = torch.tensor([[math.log(2), 0.0, 50.0], [-math.log(2), 50.0, 50.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    kl = kl_penalty(logp, ref, "low_var")
    beta = 0.04
    term = beta * aggregate(kl, mask, "token_mean")
    assert term.item() == pytest.approx(beta * 0.5 / 3, rel=1e-5)
    seq = aggregate(kl, mask, "seq_mean_token_mean")
    assert seq.item() == pytest.approx(((1 - math.log(2)) / 2 + (math.log(2) - 0.5)) / 2, rel=1e-5)
