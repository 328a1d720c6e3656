"""Hand-computed tests for chimed_lit.losses.policy.policy_loss: PPO's clipped surrogate
(Schulman et al. 2017, eq. 7) with DAPO's asymmetric clip (Yu et al. 2025, eq. 8, section 3.1)
and GSPO's sequence-level ratio (Zheng et al. 2025, eq. 5 and 7; GSPO-token, section 4.3)."""

import math

import pytest
import torch

from chimed_lit.losses import aggregate, policy_loss, ppo_policy_loss
from chimed_lit.losses.masked import masked_mean

LOW, HIGH = 0.2, 0.28  # DAPO's clip-higher setting: ratio kept in [0.8, 1.28]


def _ratio_table() -> tuple[torch.Tensor, ...]:
    """A designed ratio table (float64, so exp(log r) returns r to ~1e-16).

    row 0, A = +1: r = [1.5, 1.25, 0.5, (pad 10)]
        1.5 > 1.28 with A > 0 -> clipped high: l = max(-1.5, -1.28) = -1.28
        1.25 is inside [0.8, 1.28] (a symmetric 0.2 clip would cut it): l = -1.25
        0.5 < 0.8 but A > 0 -> the pessimistic branch is the unclipped one: l = -0.5
    row 1, A = -1: r = [0.5, 1.5, 0.9, 0.7]
        0.5 and 0.7 < 0.8 with A < 0 -> clipped low: l = max(0.5, 0.8) = 0.8, max(0.7, 0.8) = 0.8
        1.5 with A < 0 -> unclipped: l = max(1.5, 1.28) = 1.5;  0.9 inside: l = 0.9
    row 2, A = 0: r = [2.0, 1.0, pad, pad] -> l = 0, never counted as clipped
    9 valid tokens; clipped high 1, clipped low 2.
    """
    ratios = [[1.5, 1.25, 0.5, 10.0], [0.5, 1.5, 0.9, 0.7], [2.0, 1.0, 1.0, 1.0]]
    logp = torch.tensor([[math.log(r) for r in row] for row in ratios], dtype=torch.float64)
    logp.requires_grad_(True)
    old = torch.zeros(3, 4, dtype=torch.float64)
    adv = torch.tensor([1.0, -1.0, 0.0], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 0, 0]])
    return logp, old, adv, mask


# per-token losses of the table: row sums -3.03, 4.0, 0; total 0.97
TABLE_LOSS = {
    ("token_mean", None): 0.97 / 9,
    ("seq_mean_token_mean", None): (-3.03 / 3 + 4.0 / 4 + 0.0) / 3,
    ("seq_mean_token_sum", None): 0.97 / 3,
    ("seq_mean_token_sum", 4): 0.97 / (3 * 4),
}


@pytest.mark.parametrize(("aggregation", "max_tokens"), list(TABLE_LOSS))
def test_clip_higher_ratio_table_by_hand(aggregation, max_tokens) -> None:
    logp, old, adv, mask = _ratio_table()
    loss, stats = policy_loss(
        logp,
        old,
        adv,
        mask,
        clip_low=LOW,
        clip_high=HIGH,
        aggregation=aggregation,
        max_tokens=max_tokens,
    )
    assert loss.item() == pytest.approx(TABLE_LOSS[(aggregation, max_tokens)], rel=1e-9)
    assert stats["policy_loss"].item() == pytest.approx(loss.item())
    assert stats["clip_fraction_high"].item() == pytest.approx(1 / 9)
    assert stats["clip_fraction_low"].item() == pytest.approx(2 / 9)
    assert stats["clip_fraction"].item() == pytest.approx(3 / 9)
    # (1.5 + 1.25 + 0.5 + 0.5 + 1.5 + 0.9 + 0.7 + 2.0 + 1.0) / 9
    assert stats["ratio_mean"].item() == pytest.approx(9.85 / 9, rel=1e-9)
    logs = [1.5, 1.25, 0.5, 0.5, 1.5, 0.9, 0.7, 2.0, 1.0]
    expected_kl = 0.5 * sum(math.log(r) ** 2 for r in logs) / 9
    assert stats["approx_kl"].item() == pytest.approx(expected_kl, rel=1e-9)
    assert all(not v.requires_grad and v.dim() == 0 for v in stats.values())


def test_clip_higher_gradient_by_hand() -> None:
    """token_mean: d l / d logp = -A r on unclipped tokens, 0 on clipped ones, / 9 tokens.

    row 0: [0 (clipped), -1.25, -0.5, 0 (pad)] / 9;  row 1: [0, 1.5, 0.9, 0] / 9;  row 2: 0.
    Descent raises logp where A > 0 and lowers it where A < 0; clipped tokens get no push.
    """
    logp, old, adv, mask = _ratio_table()
    loss, _ = policy_loss(logp, old, adv, mask, clip_low=LOW, clip_high=HIGH)
    loss.backward()
    expected = torch.tensor(
        [[0.0, -1.25, -0.5, 0.0], [0.0, 1.5, 0.9, 0.0], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64
    )
    torch.testing.assert_close(logp.grad, expected / 9)


def test_symmetric_clip_cuts_what_clip_higher_keeps() -> None:
    """With clip_high = 0.2 the 1.25 token (A > 0) is clipped too: 2 of 9 clipped high. Row 0's
    losses become [-1.2, -1.2, -0.5] (the 1.5 token is now held at 1.2, not 1.28); row 1's 1.5
    token (A < 0) keeps max(1.5, 1.2) = 1.5. Total 0.97 + 0.08 + 0.05 = 1.10."""
    logp, old, adv, mask = _ratio_table()
    loss, stats = policy_loss(logp, old, adv, mask, clip_low=0.2, clip_high=0.2)
    assert stats["clip_fraction_high"].item() == pytest.approx(2 / 9)
    assert stats["clip_fraction_low"].item() == pytest.approx(2 / 9)
    assert loss.item() == pytest.approx(1.10 / 9, rel=1e-9)


def _gspo_batch() -> tuple[torch.Tensor, ...]:
    """Token log-ratios (old = 0) and per-response advantages; clip [0.8, 1.3].

    row 0, A = +1: [0.3, -0.1, pad] -> mean 0.1, s = e^0.1 = 1.105171: inside -> l = -s
        (its first token alone has ratio e^0.3 = 1.35 > 1.3: token-level PPO would clip it)
    row 1, A = -1: [0.2, 0.4, 0.6]  -> mean 0.4, s = e^0.4 = 1.491825: A < 0, above -> l = +s
    row 2, A = +1: [0.5, 0.7, pad]  -> mean 0.6, s = e^0.6 = 1.822119 > 1.3 -> clipped, l = -1.3
    row 3, A = -1: [-0.5, -0.3, -0.1] -> mean -0.3, s = e^-0.3 = 0.740818 < 0.8 -> clipped,
        l = max(0.7408, 0.8) = 0.8
    10 valid tokens: 2 clipped high (row 2), 3 clipped low (row 3).
    """
    logp = torch.tensor(
        [[0.3, -0.1, 9.0], [0.2, 0.4, 0.6], [0.5, 0.7, 9.0], [-0.5, -0.3, -0.1]],
        dtype=torch.float64,
        requires_grad=True,
    )
    old = torch.zeros(4, 3, dtype=torch.float64)
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 1, 0], [1, 1, 1]])
    return logp, old, adv, mask


S = [math.exp(0.1), math.exp(0.4), math.exp(0.6), math.exp(-0.3)]


def test_gspo_sequence_ratio_by_hand() -> None:
    logp, old, adv, mask = _gspo_batch()
    loss, stats = policy_loss(
        logp,
        old,
        adv,
        mask,
        clip_low=0.2,
        clip_high=0.3,
        ratio_level="sequence",
        aggregation="seq_mean_token_mean",
    )
    # every token of a response carries the same loss, so its token mean is that loss
    assert loss.item() == pytest.approx((-S[0] + S[1] - 1.3 + 0.8) / 4, rel=1e-9)
    assert stats["clip_fraction_high"].item() == pytest.approx(2 / 10)
    assert stats["clip_fraction_low"].item() == pytest.approx(3 / 10)
    assert stats["clip_fraction"].item() == pytest.approx(5 / 10)
    # the ratio's value is s_i on each of response i's tokens
    ratio_mean = (2 * S[0] + 3 * S[1] + 2 * S[2] + 3 * S[3]) / 10
    assert stats["ratio_mean"].item() == pytest.approx(ratio_mean, rel=1e-9)
    # approx_kl stays the token-level k2: 0.5 * mean of the squared token log-ratios
    sq = [0.09, 0.01, 0.04, 0.16, 0.36, 0.25, 0.49, 0.25, 0.09, 0.01]
    assert stats["approx_kl"].item() == pytest.approx(0.5 * sum(sq) / 10, rel=1e-9)
    # at token level row 0's first token (e^0.3 > 1.3, A > 0) is clipped: a different count
    _, token_stats = policy_loss(logp, old, adv, mask, clip_low=0.2, clip_high=0.3)
    assert token_stats["clip_fraction_high"].item() != pytest.approx(2 / 10)


def test_gspo_token_gradient_by_hand() -> None:
    """GSPO-token: d w_t / d logp_t = s_i, so d l_t / d logp_t = -A_i s_i when unclipped.
    seq_mean_token_mean weighs a token of response i by 1 / (4 responses * |y_i|):

    row 0: -s0 / (4 * 2) per token; row 1: +s1 / (4 * 3) per token; rows 2, 3 clipped: 0.
    This is GSPO's sequence-level gradient: d/d logp_t [-A s_i] = -A s_i / |y_i|.
    """
    logp, old, adv, mask = _gspo_batch()
    loss, _ = policy_loss(
        logp,
        old,
        adv,
        mask,
        clip_low=0.2,
        clip_high=0.3,
        ratio_level="sequence",
        aggregation="seq_mean_token_mean",
    )
    loss.backward()
    g0, g1 = -S[0] / 8, S[1] / 12
    expected = torch.tensor(
        [[g0, g0, 0.0], [g1, g1, g1], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64
    )
    torch.testing.assert_close(logp.grad, expected)


def _gspo_reference(logp, old, adv, mask, clip_low, clip_high) -> torch.Tensor:
    """GSPO's objective (eq. 5) written directly: s_i = exp(masked mean of the log-ratio),
    differentiable through the mean, one clipped term per response, mean over responses."""
    s = torch.exp(masked_mean(logp - old, mask, dim=-1))
    per_seq = torch.maximum(-adv * s, -adv * torch.clamp(s, 1 - clip_low, 1 + clip_high))
    return per_seq.mean()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gspo_token_form_matches_sequence_gspo_value_and_gradient(seed) -> None:
    """On random ragged batches (some responses clipped, some not) the sg-trick form's value and
    autograd gradient equal those of GSPO's sequence objective differentiated directly."""
    g = torch.Generator().manual_seed(seed)
    n, t = 6, 7
    logp = (-torch.rand(n, t, generator=g, dtype=torch.float64)).requires_grad_(True)
    old = logp.detach() + 0.15 * torch.randn(n, t, generator=g, dtype=torch.float64)
    adv = torch.randn(n, generator=g, dtype=torch.float64)
    lengths = torch.randint(1, t + 1, (n,), generator=g)
    mask = (torch.arange(t)[None, :] < lengths[:, None]).long()
    loss, _ = policy_loss(
        logp,
        old,
        adv,
        mask,
        clip_low=0.05,
        clip_high=0.05,
        ratio_level="sequence",
        aggregation="seq_mean_token_mean",
    )
    (grad,) = torch.autograd.grad(loss, logp)
    ref_logp = logp.detach().clone().requires_grad_(True)
    ref = _gspo_reference(ref_logp, old, adv, mask, 0.05, 0.05)
    (ref_grad,) = torch.autograd.grad(ref, ref_logp)
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(grad, ref_grad)
    assert (grad.abs().sum(dim=-1) > 0).any()  # not vacuous: some responses are unclipped


@pytest.mark.parametrize("clip", [0.1, 0.2, 0.3])
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_ppo_policy_loss_with_symmetric_token_clip(clip, seed) -> None:
    """clip_low = clip_high, ratio_level="token", aggregation="token_mean" is exactly
    ppo_policy_loss with the per-response advantages broadcast over tokens: loss, gradient
    and the shared stats."""
    g = torch.Generator().manual_seed(seed)
    n, t = 5, 6
    logp = (-torch.rand(n, t, generator=g)).requires_grad_(True)
    old = logp.detach() + 0.3 * torch.randn(n, t, generator=g)
    adv = torch.randn(n, generator=g)
    lengths = torch.randint(1, t + 1, (n,), generator=g)
    mask = (torch.arange(t)[None, :] < lengths[:, None]).long()

    loss, stats = policy_loss(logp, old, adv, mask, clip_low=clip, clip_high=clip)
    (grad,) = torch.autograd.grad(loss, logp)
    ppo_logp = logp.detach().clone().requires_grad_(True)
    ppo_loss, ppo_stats = ppo_policy_loss(ppo_logp, old, adv[:, None].expand(n, t), mask, clip)
    (ppo_grad,) = torch.autograd.grad(ppo_loss, ppo_logp)

    torch.testing.assert_close(loss, ppo_loss)
    torch.testing.assert_close(grad, ppo_grad)
    torch.testing.assert_close(stats["clip_fraction"], ppo_stats["clipfrac"])
    for key in ("approx_kl", "ratio_mean", "policy_loss"):
        torch.testing.assert_close(stats[key], ppo_stats[key])
    assert ppo_stats["clipfrac"].item() > 0  # the inputs do exercise the clip


def test_token_level_advantages_equal_broadcast_ones() -> None:
    logp, old, adv, mask = _ratio_table()
    a, _ = policy_loss(logp, old, adv, mask, clip_low=LOW, clip_high=HIGH)
    b, _ = policy_loss(logp, old, adv[:, None].expand(3, 4), mask, clip_low=LOW, clip_high=HIGH)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("ratio_level", ["token", "sequence"])
@pytest.mark.parametrize("aggregation", ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum"])
def test_garbage_in_padding_never_reaches_loss_or_gradient(ratio_level, aggregation) -> None:
    """inf / NaN log-probs in padded slots: the loss stays the clean one and the gradient is
    finite, 0 in the padding (no 0 * inf through a masked-out branch)."""
    logp, old, adv, mask = _gspo_batch()
    clean, _ = policy_loss(
        logp, old, adv, mask, ratio_level=ratio_level, aggregation=aggregation, max_tokens=3
    )
    dirty = logp.detach().clone()
    dirty[0, 2], dirty[2, 2] = float("inf"), float("nan")
    dirty_old = old.clone()
    dirty_old[2, 2] = float("-inf")
    dirty.requires_grad_(True)
    loss, stats = policy_loss(
        dirty, dirty_old, adv, mask, ratio_level=ratio_level, aggregation=aggregation, max_tokens=3
    )
    torch.testing.assert_close(loss, clean)
    assert all(torch.isfinite(v) for v in stats.values())
    loss.backward()
    assert torch.isfinite(dirty.grad).all()
    assert dirty.grad[0, 2].item() == 0.0 and dirty.grad[2, 2].item() == 0.0


def test_aggregation_is_the_exported_aggregate() -> None:
    """policy_loss with an aggregation == aggregate() of the hand per-token loss table."""
    logp, old, adv, mask = _ratio_table()
    per_token = torch.tensor(
        [[-1.28, -1.25, -0.5, 0.0], [0.8, 1.5, 0.9, 0.8], [0.0, 0.0, 0.0, 0.0]],
        dtype=torch.float64,
    )
    for mode in ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum"):
        loss, _ = policy_loss(logp, old, adv, mask, clip_low=LOW, clip_high=HIGH, aggregation=mode)
        torch.testing.assert_close(loss.detach(), aggregate(per_token, mask, mode))


def test_bad_arguments_raise_value_error() -> None:
    logp, old, adv, mask = _ratio_table()
    with pytest.raises(ValueError, match="ratio_level"):
        policy_loss(logp, old, adv, mask, ratio_level="tok")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="aggregation"):
        policy_loss(logp, old, adv, mask, aggregation="mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="> 0"):
        policy_loss(logp, old, adv, mask, clip_low=0.0)
    with pytest.raises(ValueError, match="> 0"):
        policy_loss(logp, old, adv, mask, clip_high=-0.1)
    with pytest.raises(ValueError, match="clip_low must be < 1"):
        policy_loss(logp, old, adv, mask, clip_low=1.0)
    with pytest.raises(ValueError, match="share one"):
        policy_loss(logp, old[:, :3], adv, mask)
    with pytest.raises(ValueError, match="advantages must be"):
        policy_loss(logp, old, adv[:2], mask)
    with pytest.raises(ValueError, match="max_tokens"):
        policy_loss(logp, old, adv, mask, aggregation="seq_mean_token_sum", max_tokens=-1)
