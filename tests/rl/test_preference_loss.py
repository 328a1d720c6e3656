"""Tests for chimed_lit.losses.preference: Bradley-Terry reward loss (Llama 2 eq. 2 margin,
Eisenstein et al. 2023 centering), DPO (Rafailov et al. 2023 eq. 7), IPO (Azar et al. 2023
eq. 17), SLiC hinge (Zhao et al. 2023), SimPO (Meng et al. 2024 eq. 6), ORPO (Hong et al. 2024).
"""

import math

import pytest
import torch

from chimed_lit.losses.preference import (
    DPOLossType,
    dpo_loss,
    log1mexp,
    orpo_loss,
    reward_pairwise_loss,
    simpo_loss,
)


def softplus(x: float) -> float:
    """-log sigmoid(-x) = log(1 + e^x), written out for hand computations."""
    return math.log1p(math.exp(x))


# ----------------------------------------------------------------------------- reward model


def test_reward_loss_by_hand() -> None:
    """r_c = [2, 0.5], r_r = [1, 1]: diffs [1, -0.5].

    loss = mean(log(1 + e^-1), log(1 + e^0.5)) = mean(0.313262, 0.974077) = 0.643670
    accuracy 1/2, margin_mean 0.25, chosen_mean 1.25, rejected_mean 1.0.
    """
    loss, stats = reward_pairwise_loss(torch.tensor([2.0, 0.5]), torch.tensor([1.0, 1.0]))
    assert loss.item() == pytest.approx((softplus(-1.0) + softplus(0.5)) / 2, rel=1e-6)
    assert loss.item() == pytest.approx(0.643670, rel=1e-5)
    assert stats["accuracy"].item() == 0.5
    assert stats["margin_mean"].item() == pytest.approx(0.25)
    assert stats["chosen_mean"].item() == pytest.approx(1.25)
    assert stats["rejected_mean"].item() == pytest.approx(1.0)


def test_reward_loss_with_margin_and_centering() -> None:
    """Margin [1, 0] (Llama 2 eq. 2): logits [1 - 1, -0.5 - 0] -> mean(log 2, log(1 + e^0.5))
    = (0.693147 + 0.974077) / 2 = 0.833612. Accuracy ignores the margin (still 1/2).
    Centering 0.01 * mean((r_c + r_r)^2) = 0.01 * (9 + 2.25) / 2 = 0.05625 on top.
    """
    rc, rr = torch.tensor([2.0, 0.5]), torch.tensor([1.0, 1.0])
    margin = torch.tensor([1.0, 0.0])
    loss, stats = reward_pairwise_loss(rc, rr, margin=margin)
    assert loss.item() == pytest.approx((math.log(2) + softplus(0.5)) / 2, rel=1e-6)
    assert stats["accuracy"].item() == 0.5
    loss_c, stats_c = reward_pairwise_loss(rc, rr, margin=margin, center_coef=0.01)
    assert loss_c.item() == pytest.approx(0.833612 + 0.05625, rel=1e-5)
    assert stats_c["center_loss"].item() == pytest.approx(5.625)


def test_reward_loss_gradient_directions() -> None:
    """BT gradient: d/dr_c = -sigmoid(-(r_c - r_r)) / B < 0, d/dr_r = -d/dr_c.
    Centering adds 2 * coef * (r_c + r_r) / B, pulling the reward sum toward 0."""
    rc = torch.tensor([2.0, 0.5], requires_grad=True)
    rr = torch.tensor([1.0, 1.0], requires_grad=True)
    loss, _ = reward_pairwise_loss(rc, rr)
    loss.backward()
    sig = [1 / (1 + math.exp(1.0)), 1 / (1 + math.exp(-0.5))]  # sigmoid(-diff)
    torch.testing.assert_close(rc.grad, torch.tensor([-sig[0] / 2, -sig[1] / 2]))
    torch.testing.assert_close(rr.grad, -rc.grad)

    # identical pair rewards: BT gradients cancel in the sum, centering remains
    a = torch.tensor([3.0], requires_grad=True)
    b = torch.tensor([3.0], requires_grad=True)
    loss, _ = reward_pairwise_loss(a, b, center_coef=0.1)
    loss.backward()
    # d/da = -0.5 + 2 * 0.1 * 6 = 0.7;  d/db = +0.5 + 1.2 = 1.7
    assert a.grad.item() == pytest.approx(0.7)
    assert b.grad.item() == pytest.approx(1.7)


# ----------------------------------------------------------------------------- DPO family

# pi_c = -10, pi_r = -12, ref_c = -11, ref_r = -11.5
# h = (pi_c - pi_r) - (ref_c - ref_r) = 2 - 0.5 = 1.5
PI_C, PI_R, REF_C, REF_R = -10.0, -12.0, -11.0, -11.5


def _dpo_inputs(requires_grad: bool = False) -> tuple[torch.Tensor, ...]:
    pc = torch.tensor([PI_C], requires_grad=requires_grad)
    pr = torch.tensor([PI_R], requires_grad=requires_grad)
    return pc, pr, torch.tensor([REF_C]), torch.tensor([REF_R])


def test_dpo_sigmoid_by_hand() -> None:
    """beta 0.1: beta h = 0.15, loss = log(1 + e^-0.15) = log(1.860708) = 0.620957.
    Implicit rewards beta (pi - ref): chosen 0.1 * 1 = 0.1, rejected 0.1 * -0.5 = -0.05."""
    loss, stats = dpo_loss(*_dpo_inputs(), beta=0.1)
    assert loss.item() == pytest.approx(softplus(-0.15), rel=1e-6)
    assert loss.item() == pytest.approx(0.620957, rel=1e-5)
    assert stats["reward_chosen"].item() == pytest.approx(0.1, rel=1e-5)
    assert stats["reward_rejected"].item() == pytest.approx(-0.05, rel=1e-5)
    assert stats["reward_margin"].item() == pytest.approx(0.15, rel=1e-5)
    assert stats["accuracy"].item() == 1.0


def test_dpo_label_smoothing_by_hand() -> None:
    """cDPO, eps 0.1: 0.9 * log(1 + e^-0.15) + 0.1 * log(1 + e^0.15)
    = 0.9 * 0.620957 + 0.1 * 0.770957 = 0.635957."""
    loss, _ = dpo_loss(*_dpo_inputs(), beta=0.1, label_smoothing=0.1)
    assert loss.item() == pytest.approx(0.9 * softplus(-0.15) + 0.1 * softplus(0.15), rel=1e-6)
    assert loss.item() == pytest.approx(0.635957, rel=1e-5)


def test_ipo_and_hinge_by_hand() -> None:
    """IPO, beta 0.1: (h - 1/(2 * 0.1))^2 = (1.5 - 5)^2 = 12.25.
    Hinge: relu(1 - 0.1 * 1.5) = 0.85; with beta 1: relu(1 - 1.5) = 0."""
    loss, _ = dpo_loss(*_dpo_inputs(), beta=0.1, loss_type="ipo")
    assert loss.item() == pytest.approx(12.25, rel=1e-6)
    loss, _ = dpo_loss(*_dpo_inputs(), beta=0.1, loss_type="hinge")
    assert loss.item() == pytest.approx(0.85, rel=1e-6)
    loss, _ = dpo_loss(*_dpo_inputs(), beta=1.0, loss_type="hinge")
    assert loss.item() == 0.0


def test_ipo_minimum_at_target_margin() -> None:
    """IPO is zero exactly when h = 1/(2 beta) (beta 0.25 -> h = 2) and grows either side."""
    ref = torch.tensor([0.0])
    zero, _ = dpo_loss(torch.tensor([-1.0]), torch.tensor([-3.0]), ref, ref, 0.25, "ipo")
    over, _ = dpo_loss(torch.tensor([-1.0]), torch.tensor([-4.0]), ref, ref, 0.25, "ipo")
    assert zero.item() == pytest.approx(0.0, abs=1e-7)
    assert over.item() == pytest.approx(1.0)  # (3 - 2)^2


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo", "hinge"])
def test_dpo_gradient_raises_chosen_lowers_rejected(loss_type: DPOLossType) -> None:
    """At h = 1.5, beta 0.1 every variant wants a larger h: grad < 0 on chosen, > 0 on
    rejected, and one small descent step lowers the loss."""
    pc, pr, rc, rr = _dpo_inputs(requires_grad=True)
    loss, _ = dpo_loss(pc, pr, rc, rr, beta=0.1, loss_type=loss_type)
    loss.backward()
    assert pc.grad.item() < 0 < pr.grad.item()
    with torch.no_grad():
        pc2, pr2 = pc - 0.01 * pc.grad, pr - 0.01 * pr.grad
        step, _ = dpo_loss(pc2, pr2, rc, rr, beta=0.1, loss_type=loss_type)
    assert step.item() < loss.item()


def test_dpo_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="label_smoothing"):
        dpo_loss(*_dpo_inputs(), beta=0.1, loss_type="ipo", label_smoothing=0.1)
    with pytest.raises(ValueError, match="loss_type"):
        dpo_loss(*_dpo_inputs(), beta=0.1, loss_type="kto")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(*_dpo_inputs(), beta=0.0)


def test_simpo_by_hand() -> None:
    """Meng et al. eq. 6, beta 2, gamma 0.5, avg logps c = -0.5, r = -1.0:
    2 * (-0.5 + 1.0) - 0.5 = 0.5 -> loss = log(1 + e^-0.5) = 0.474077.
    Rewards beta * avg logp: chosen -1.0, rejected -2.0."""
    c = torch.tensor([-0.5], requires_grad=True)
    loss, stats = simpo_loss(c, torch.tensor([-1.0]), beta=2.0, gamma=0.5)
    assert loss.item() == pytest.approx(0.474077, rel=1e-5)
    assert stats["reward_chosen"].item() == pytest.approx(-1.0)
    assert stats["reward_rejected"].item() == pytest.approx(-2.0)
    assert stats["accuracy"].item() == 1.0
    # d loss / dc = -beta * sigmoid(-0.5) = -2 * 0.377541 = -0.755082
    loss.backward()
    assert c.grad.item() == pytest.approx(-2 / (1 + math.exp(0.5)), rel=1e-5)


def test_orpo_by_hand() -> None:
    """Hong et al. 2024. chosen avg logp log 0.5 -> odds 1, log odds 0;
    rejected log 0.2 -> odds 0.25, log odds log 0.25 = -1.386294.
    log OR = 1.386294; L_OR = log(1 + e^-1.386294) = log(1.25) = 0.223144.
    loss = nll 1.2 + 0.1 * 0.223144 = 1.2223144."""
    c = torch.tensor([math.log(0.5)], requires_grad=True)
    r = torch.tensor([math.log(0.2)])
    loss, stats = orpo_loss(c, r, chosen_nll=torch.tensor([1.2]), lam=0.1)
    assert loss.item() == pytest.approx(1.2223144, rel=1e-6)
    assert stats["or_loss"].item() == pytest.approx(math.log(1.25), rel=1e-6)
    assert stats["reward_margin"].item() == pytest.approx(math.log(4.0), rel=1e-6)
    assert stats["reward_chosen"].item() == pytest.approx(0.0, abs=1e-6)
    assert stats["accuracy"].item() == 1.0
    loss.backward()
    assert c.grad.item() < 0  # raising the chosen likelihood lowers the loss


def test_orpo_is_stable_at_extreme_probabilities() -> None:
    """avg logp 0 (p = 1, infinite odds) and -80 (p ~ 1e-35) must give finite loss and grads.
    For very negative a, log odds = a - log(1 - e^a) ~ a."""
    c = torch.tensor([0.0, -80.0], requires_grad=True)
    r = torch.tensor([-80.0, -1e-12])
    loss, stats = orpo_loss(c, r, chosen_nll=torch.tensor([0.0, 80.0]), lam=1.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(c.grad).all()
    assert all(torch.isfinite(v) for v in stats.values())
    # log1mexp accurate on both branches: log(1 - e^-1e-6) ~ log(1e-6), log(1 - e^-50) ~ -e^-50
    assert log1mexp(torch.tensor(-1e-6, dtype=torch.float64)).item() == pytest.approx(
        math.log(1e-6), rel=1e-6
    )
    assert log1mexp(torch.tensor(-50.0, dtype=torch.float64)).item() == pytest.approx(
        -math.exp(-50), rel=1e-9
    )
