"""Tests for chimed_lit.losses.ppo: clipped surrogate (Schulman et al. 2017, PPO eq. 7),
clipped value loss, and masked entropy."""

import math

import pytest
import torch

from chimed_lit.losses.ppo import entropy_from_logits, ppo_policy_loss, ppo_value_loss

CLIP = 0.2


def _policy_batch() -> tuple[torch.Tensor, ...]:
    """Four tokens covering both clip regimes for A > 0 and A < 0, plus a masked 5th."""
    ratios = [1.5, 0.5, 0.5, 1.5, 10.0]
    logp = torch.tensor([[math.log(r) for r in ratios]], requires_grad=True)
    old = torch.zeros(1, 5)
    adv = torch.tensor([[2.0, 2.0, -1.0, -1.0, 100.0]])
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    return logp, old, adv, mask


def test_policy_loss_both_regimes_by_hand() -> None:
    """PPO eq. 7, loss = max(-A r, -A clip(r, 0.8, 1.2)) per token:

    A=+2, r=1.5: max(-3.0, -2.4) = -2.4  (clipped: no gain from going beyond 1.2)
    A=+2, r=0.5: max(-1.0, -1.6) = -1.0  (unclipped: pessimistic branch)
    A=-1, r=0.5: max( 0.5,  0.8) =  0.8  (clipped at 0.8)
    A=-1, r=1.5: max( 1.5,  1.2) =  1.5  (unclipped)
    mean = (-2.4 - 1.0 + 0.8 + 1.5) / 4 = -0.275; clipfrac = 2/4; ratio_mean = 4/4 = 1.
    approx_kl = 0.5 * mean(log(r)^2) = 0.25 * (log(1.5)^2 + log(2)^2).
    """
    logp, old, adv, mask = _policy_batch()
    loss, stats = ppo_policy_loss(logp, old, adv, mask, CLIP)
    assert loss.item() == pytest.approx(-0.275, rel=1e-5)
    assert stats["clipfrac"].item() == pytest.approx(0.5)
    assert stats["ratio_mean"].item() == pytest.approx(1.0, rel=1e-5)
    expected_kl = 0.25 * (math.log(1.5) ** 2 + math.log(2.0) ** 2)
    assert stats["approx_kl"].item() == pytest.approx(expected_kl, rel=1e-5)
    assert all(not v.requires_grad and v.dim() == 0 for v in stats.values())


def test_policy_loss_gradient_zero_when_clipped() -> None:
    """d/dlogp of -A r = -A r. Clipped tokens and the masked token get zero gradient.

    token 1 (A=2, r=0.5): -2 * 0.5 / 4 = -0.25; token 3 (A=-1, r=1.5): 1.5 / 4 = 0.375.
    Gradient descent therefore raises logp where A > 0 and lowers it where A < 0.
    """
    logp, old, adv, mask = _policy_batch()
    loss, _ = ppo_policy_loss(logp, old, adv, mask, CLIP)
    loss.backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, -0.25, 0.0, 0.375, 0.0]]))


def test_policy_loss_on_policy_equals_negative_mean_advantage() -> None:
    """At ratio 1 (first PPO epoch) nothing is clipped and loss = -mean(A) = -(1 - 3)/2 = 1."""
    logp = torch.tensor([[-1.0, -2.0]])
    loss, stats = ppo_policy_loss(
        logp, logp.clone(), torch.tensor([[1.0, -3.0]]), torch.ones(1, 2), CLIP
    )
    assert loss.item() == pytest.approx(1.0)
    assert stats["clipfrac"].item() == 0.0 and stats["approx_kl"].item() == 0.0


def test_value_loss_by_hand() -> None:
    """clip 0.2, V_clip = V_old + clip(V - V_old, -0.2, 0.2):

    V=1.0, old=0.5, R=2: V_clip=0.7, max((1-2)^2, (0.7-2)^2) = max(1, 1.69) = 1.69 (clipped)
    V=1.0, old=0.5, R=0: V_clip=0.7, max((1-0)^2, (0.7-0)^2) = max(1, 0.49) = 1.0
    V=2.0, old=2.0, R=1: equal errors 1.0 (not counted as clipped)
    loss = 0.5 * (1.69 + 1 + 1) / 3 = 0.615; vf_clipfrac = 1/3; value_mean = 4/3.
    """
    values = torch.tensor([[1.0, 1.0, 2.0, 50.0]], requires_grad=True)
    old = torch.tensor([[0.5, 0.5, 2.0, 0.0]])
    returns = torch.tensor([[2.0, 0.0, 1.0, -50.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    loss, stats = ppo_value_loss(values, old, returns, mask, CLIP)
    assert loss.item() == pytest.approx(0.615, rel=1e-5)
    assert stats["vf_clipfrac"].item() == pytest.approx(1 / 3)
    assert stats["value_mean"].item() == pytest.approx(4 / 3)
    # grad = 0.5 * 2 * (V - R) / 3 on unclipped tokens, 0 where the clipped branch wins
    loss.backward()
    torch.testing.assert_close(values.grad, torch.tensor([[0.0, 1 / 3, 1 / 3, 0.0]]))


def test_value_loss_decreases_along_negative_gradient() -> None:
    g = torch.Generator().manual_seed(0)
    values = torch.randn(3, 5, generator=g, requires_grad=True)
    old = values.detach() + 0.05 * torch.randn(3, 5, generator=g)
    returns = torch.randn(3, 5, generator=g)
    mask = torch.ones(3, 5)
    loss, _ = ppo_value_loss(values, old, returns, mask, CLIP)
    loss.backward()
    with torch.no_grad():
        loss2, _ = ppo_value_loss(values - 0.01 * values.grad, old, returns, mask, CLIP)
    assert loss2.item() < loss.item()


def test_entropy_by_hand() -> None:
    """Token 0 uniform over 3 -> log 3; token 1 probs [0.5, 0.25, 0.25] ->
    0.5 log 2 + 2 * 0.25 log 4 = 1.5 log 2; token 2 masked. Mean = (log 3 + 1.5 log 2) / 2."""
    logits = torch.tensor(
        [[[0.0, 0.0, 0.0], [math.log(0.5), math.log(0.25), math.log(0.25)], [9.0, -9.0, 0.0]]]
    )
    ent = entropy_from_logits(logits, torch.tensor([[1, 1, 0]]))
    assert ent.item() == pytest.approx((math.log(3) + 1.5 * math.log(2)) / 2, rel=1e-6)


def test_entropy_matches_categorical_and_handles_extreme_logits() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 7, generator=g) * 5
    logits[0, 0, 0] = 1e4  # near one-hot: entropy ~ 0, must stay finite
    mask = torch.ones(2, 4)
    expected = torch.distributions.Categorical(logits=logits).entropy().mean()
    ent = entropy_from_logits(logits, mask)
    assert torch.isfinite(ent)
    torch.testing.assert_close(ent, expected, rtol=1e-5, atol=1e-6)
