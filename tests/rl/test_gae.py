"""Tests for chimed_lit.losses.gae: GAE (Schulman et al. 2016, eq. 16) and KL-shaped token
rewards (Ziegler et al. 2019 / InstructGPT)."""

import pytest
import torch

from chimed_lit.losses.gae import compute_gae, token_rewards

GAMMA, LAM = 0.9, 0.8  # gamma * lam = 0.72


def test_gae_single_row_by_hand() -> None:
    """rewards [1, 0, 2], values [0.5, 1.0, 1.5], gamma 0.9, lam 0.8, V after end = 0.

    t=2: delta = 2 + 0.9*0   - 1.5 = 0.5   A2 = 0.5
    t=1: delta = 0 + 0.9*1.5 - 1.0 = 0.35  A1 = 0.35 + 0.72*0.5  = 0.71
    t=0: delta = 1 + 0.9*1.0 - 0.5 = 1.4   A0 = 1.4  + 0.72*0.71 = 1.9112
    returns = A + V = [2.4112, 1.71, 2.0]
    """
    adv, ret = compute_gae(
        torch.tensor([[1.0, 0.0, 2.0]]),
        torch.tensor([[0.5, 1.0, 1.5]]),
        torch.ones(1, 3),
        GAMMA,
        LAM,
    )
    torch.testing.assert_close(adv, torch.tensor([[1.9112, 0.71, 0.5]]))
    torch.testing.assert_close(ret, torch.tensor([[2.4112, 1.71, 2.0]]))


def _ragged() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rewards = torch.tensor([[1.0, 0.0, 2.0, 99.0], [0.5, 1.0, 5.0, 5.0]])
    values = torch.tensor([[0.5, 1.0, 1.5, 77.0], [0.2, 0.4, 9.0, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    return rewards, values, mask


def test_gae_ragged_rows_by_hand() -> None:
    """Row 0 is the 3-token example above plus padding; row 1 has 2 tokens.

    Row 1: t=1: delta = 1.0 + 0.9*0   - 0.4 = 0.6   A1 = 0.6   (no bootstrap from V=9 pad)
           t=0: delta = 0.5 + 0.9*0.4 - 0.2 = 0.66  A0 = 0.66 + 0.72*0.6 = 1.092
           returns = [1.292, 1.0]. Padded positions: advantage and return 0.
    """
    adv, ret = compute_gae(*_ragged(), GAMMA, LAM)
    torch.testing.assert_close(
        adv, torch.tensor([[1.9112, 0.71, 0.5, 0.0], [1.092, 0.6, 0.0, 0.0]])
    )
    torch.testing.assert_close(
        ret, torch.tensor([[2.4112, 1.71, 2.0, 0.0], [1.292, 1.0, 0.0, 0.0]])
    )


def test_gae_padding_garbage_does_not_leak() -> None:
    """Any values (even NaN/inf) past a row's end must not change the valid advantages."""
    rewards, values, mask = _ragged()
    adv_ref, ret_ref = compute_gae(rewards, values, mask, GAMMA, LAM)
    rewards[0, 3], values[0, 3] = float("nan"), float("inf")
    rewards[1, 2:], values[1, 2:] = -1e6, float("nan")
    adv, ret = compute_gae(rewards, values, mask, GAMMA, LAM)
    torch.testing.assert_close(adv, adv_ref)
    torch.testing.assert_close(ret, ret_ref)


def test_gae_left_offset_mask() -> None:
    """A row whose valid span starts later (prompt slots masked) matches the unshifted row."""
    adv, _ = compute_gae(
        torch.tensor([[7.0, 1.0, 0.0, 2.0]]),
        torch.tensor([[3.0, 0.5, 1.0, 1.5]]),
        torch.tensor([[0, 1, 1, 1]]),
        GAMMA,
        LAM,
    )
    torch.testing.assert_close(adv, torch.tensor([[0.0, 1.9112, 0.71, 0.5]]))


def test_gae_limits_monte_carlo_and_td0() -> None:
    """Eq. 16 limits: lam = gamma = 1 gives A_t = sum_{k>=t} r_k - V_t (Monte Carlo);
    lam = 0 gives the one-step TD residual delta_t.

    rewards [1, 0, 2], values [0.5, 1.0, 1.5]: reward-to-go [3, 2, 2] -> A = [2.5, 1.0, 0.5].
    TD(0), gamma 0.9: deltas computed above = [1.4, 0.35, 0.5].
    """
    r = torch.tensor([[1.0, 0.0, 2.0]])
    v = torch.tensor([[0.5, 1.0, 1.5]])
    m = torch.ones(1, 3)
    adv_mc, ret_mc = compute_gae(r, v, m, 1.0, 1.0)
    torch.testing.assert_close(adv_mc, torch.tensor([[2.5, 1.0, 0.5]]))
    torch.testing.assert_close(ret_mc, torch.tensor([[3.0, 2.0, 2.0]]))
    adv_td, _ = compute_gae(r, v, m, GAMMA, 0.0)
    torch.testing.assert_close(adv_td, torch.tensor([[1.4, 0.35, 0.5]]))


def test_gae_outputs_are_detached() -> None:
    v = torch.tensor([[0.5, 1.0]], requires_grad=True)
    adv, ret = compute_gae(torch.ones(1, 2), v, torch.ones(1, 2), GAMMA, LAM)
    assert not adv.requires_grad and not ret.requires_grad


def test_token_rewards_by_hand() -> None:
    """kl_coef 0.5: reward = -0.5 * kl per token, score added on each row's last valid token.

    Row 0 (3 tokens): [-0.05, -0.1, -0.15 + 1.0 = 0.85, 0]
    Row 1 (2 tokens): [-0.25, +0.05 - 2.0 = -1.95, 0, 0]
    """
    kl = torch.tensor([[0.1, 0.2, 0.3, 9.0], [0.5, -0.1, 9.0, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    out = token_rewards(torch.tensor([1.0, -2.0]), kl, 0.5, mask)
    torch.testing.assert_close(
        out, torch.tensor([[-0.05, -0.1, 0.85, 0.0], [-0.25, -1.95, 0.0, 0.0]])
    )


def test_token_rewards_rejects_empty_row_and_bad_shapes() -> None:
    kl = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="at least one valid"):
        token_rewards(torch.zeros(2), kl, 0.1, torch.tensor([[1, 1, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match="score"):
        token_rewards(torch.zeros(3), kl, 0.1, torch.ones(2, 3))
