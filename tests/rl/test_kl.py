"""Tests for chimed_lit.losses.kl: KL estimators (Schulman 2020, "Approximating KL Divergence")
and KL controllers (Ziegler et al. 2019, eq. 2)."""

import math

import pytest
import torch

from chimed_lit.losses.kl import (
    AdaptiveKLController,
    FixedKLController,
    kl_k1,
    kl_k2,
    kl_k3,
    kl_penalty,
)


def test_estimators_by_hand() -> None:
    """logp = log 0.5, ref = log 0.25, so log ratio = log 2 and r = p_ref/p = 0.5.

    k1 = log 2 = 0.693147; k2 = 0.5 * (log 2)^2 = 0.240227;
    k3 = (r - 1) - log r = -0.5 + log 2 = 0.193147.
    """
    logp = torch.tensor([math.log(0.5)])
    ref = torch.tensor([math.log(0.25)])
    assert kl_penalty(logp, ref, "k1").item() == pytest.approx(0.693147, rel=1e-5)
    assert kl_penalty(logp, ref, "k2").item() == pytest.approx(0.240227, rel=1e-5)
    assert kl_penalty(logp, ref, "k3").item() == pytest.approx(0.193147, rel=1e-5)
    # reverse direction: log ratio = -log 2, r = 2 -> k1 < 0, k3 = 1 - log 2 = 0.306853
    assert kl_k1(ref, logp).item() == pytest.approx(-0.693147, rel=1e-5)
    assert kl_k3(ref, logp).item() == pytest.approx(0.306853, rel=1e-5)


def test_k2_k3_nonnegative_and_zero_at_equality() -> None:
    """log r <= r - 1 (concavity) makes k3 >= 0; k2 is a square. Both vanish when p = p_ref."""
    g = torch.Generator().manual_seed(0)
    logp = torch.randn(1000, generator=g) * 3
    ref = torch.randn(1000, generator=g) * 3
    assert (kl_k3(logp, ref) >= 0).all()
    assert (kl_k2(logp, ref) >= 0).all()
    assert (kl_k1(logp, ref) < 0).any()  # k1 is unbiased but not pointwise non-negative
    torch.testing.assert_close(kl_k3(logp, logp), torch.zeros(1000))
    # close distributions: k3 ~ 0.5 * x^2 for tiny x (no catastrophic cancellation)
    tiny = torch.tensor([1e-4], dtype=torch.float32)
    assert kl_k3(tiny, torch.zeros(1)).item() == pytest.approx(0.5e-8, rel=1e-3)


def test_unbiased_on_categoricals() -> None:
    """q = policy = [0.5, 0.3, 0.2], p = ref = [0.2, 0.3, 0.5], x ~ q.

    KL(q || p) = 0.5 log 2.5 + 0.3 log 1 + 0.2 log 0.4 = (0.5 - 0.2) log 2.5 = 0.274887.
    k1 has std ~0.72, so with 100k samples its mean is within ~0.0023 (1 s.e.).
    """
    q = torch.tensor([0.5, 0.3, 0.2])
    p = torch.tensor([0.2, 0.3, 0.5])
    true_kl = 0.3 * math.log(2.5)
    g = torch.Generator().manual_seed(1)
    x = torch.multinomial(q, 100_000, replacement=True, generator=g)
    logp, ref = q.log()[x], p.log()[x]
    assert kl_k1(logp, ref).mean().item() == pytest.approx(true_kl, abs=0.012)
    assert kl_k3(logp, ref).mean().item() == pytest.approx(true_kl, abs=0.012)


def test_unbiased_and_low_variance_on_gaussians() -> None:
    """Schulman's example: q = N(0, 1), p = N(0.1, 1); KL = 0.1^2 / 2 = 0.005.

    k1 = -0.1 x + 0.005 has std 0.1 (20x the KL); k3 is far less noisy.
    """
    g = torch.Generator().manual_seed(2)
    x = torch.randn(100_000, generator=g, dtype=torch.float64)
    logq = torch.distributions.Normal(0.0, 1.0).log_prob(x)
    logp = torch.distributions.Normal(0.1, 1.0).log_prob(x)
    k1, k3 = kl_k1(logq, logp), kl_k3(logq, logp)
    assert k1.mean().item() == pytest.approx(0.005, abs=0.0015)
    assert k3.mean().item() == pytest.approx(0.005, abs=0.0005)
    assert k3.std().item() < 0.2 * k1.std().item()


def test_kl_penalty_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="k4"):
        kl_penalty(torch.zeros(1), torch.zeros(1), "k4")  # type: ignore[arg-type]


def test_adaptive_controller_by_hand() -> None:
    """Ziegler et al. 2019 eq. 2 with beta0 = 0.1, target 6, horizon 10000.

    KL 9:   e = clip(9/6 - 1 = 0.5) = 0.2;  beta = 0.1 * (1 + 0.2 * 256/10000) = 0.100512
    KL 5.4: e = 0.9 - 1 = -0.1 (unclipped); beta = 0.100512 * (1 - 0.1 * 0.1) = 0.09950688
    """
    ctl = AdaptiveKLController(init_kl_coef=0.1, target=6.0, horizon=10_000)
    assert ctl.update(9.0, n_steps=256) == pytest.approx(0.100512, rel=1e-9)
    assert ctl.update(torch.tensor(5.4), n_steps=1000) == pytest.approx(0.09950688, rel=1e-6)
    assert ctl.value == pytest.approx(0.09950688, rel=1e-6)


def test_adaptive_controller_clips_error_both_ways() -> None:
    """KL 0 -> e = -1 clipped to -0.2; KL 600 -> e = 99 clipped to +0.2 (n_steps = horizon)."""
    ctl = AdaptiveKLController(init_kl_coef=1.0, target=6.0, horizon=100)
    assert ctl.update(0.0, n_steps=100) == pytest.approx(0.8)  # 1 * (1 - 0.2)
    assert ctl.update(600.0, n_steps=100) == pytest.approx(0.96)  # 0.8 * (1 + 0.2)


def test_controller_state_dict_round_trip() -> None:
    ctl = AdaptiveKLController(0.2, target=6.0, horizon=1000)
    ctl.update(12.0, n_steps=500)  # 0.2 * (1 + 0.2 * 0.5) = 0.22
    fresh = AdaptiveKLController(0.2, target=6.0, horizon=1000)
    fresh.load_state_dict(ctl.state_dict())
    assert fresh.value == pytest.approx(0.22)

    fixed = FixedKLController(0.05)
    assert fixed.update(100.0, n_steps=10_000) == 0.05
    other = FixedKLController(1.0)
    other.load_state_dict(fixed.state_dict())
    assert other.value == 0.05


def test_controllers_validate_arguments() -> None:
    with pytest.raises(ValueError):
        AdaptiveKLController(0.1, target=0.0, horizon=100)
    with pytest.raises(ValueError):
        AdaptiveKLController(0.1, target=6.0, horizon=0)
    with pytest.raises(ValueError):
        FixedKLController(-1.0)
