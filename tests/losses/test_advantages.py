"""Hand-computed tests for chimed_lit.losses.advantages: GRPO (Shao et al. 2024, DeepSeekMath
section 4.1.2), Dr. GRPO (Liu et al. 2025, section 3.2), RLOO (Ahmadian et al. 2024) and
REINFORCE++-baseline (Hu et al. 2025, arXiv 2501.03262)."""

import math

import pytest
import torch

from chimed_lit.losses import group_advantages, reinforce_pp_advantages, rloo_advantages

SQRT3 = math.sqrt(3.0)


def test_grpo_uses_the_unbiased_group_std() -> None:
    """Group [1, 0, 0, 1]: mean 0.5, deviations +-0.5, unbiased var = 4 * 0.25 / 3 = 1/3,
    std = 1/sqrt(3), so A = +-0.5 * sqrt(3) = +-0.8660 (the biased std 0.5 would give +-1)."""
    adv, stats = group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), 4, eps=0.0)
    h = 0.5 * SQRT3
    torch.testing.assert_close(adv, torch.tensor([h, -h, -h, h]))
    # with the default eps = 1e-6 the value moves by ~1e-6 relative
    adv_eps, _ = group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), 4)
    assert adv_eps[0].item() == pytest.approx(0.5 / (1 / SQRT3 + 1e-6), rel=1e-6)
    assert stats["zero_std_fraction"].item() == 0.0
    assert stats["reward_std_mean"].item() == pytest.approx(1 / SQRT3, rel=1e-6)


def test_grpo_groups_are_prompt_major_and_independent() -> None:
    """Rows 0..2 are prompt 0, rows 3..5 prompt 1.

    Prompt 0 [0.2, 0.5, 0.8]: mean 0.5, unbiased std sqrt((0.09 + 0 + 0.09) / 2) = 0.3 ->
    [-1, 0, 1]. Prompt 1 [3, 1, 2]: mean 2, std sqrt((1 + 1 + 0) / 2) = 1 -> [1, -1, 0].
    reward_std_mean = (0.3 + 1) / 2 = 0.65.
    """
    r = torch.tensor([0.2, 0.5, 0.8, 3.0, 1.0, 2.0])
    adv, stats = group_advantages(r, 3, eps=0.0)
    torch.testing.assert_close(adv, torch.tensor([-1.0, 0.0, 1.0, 1.0, -1.0, 0.0]))
    assert stats["reward_std_mean"].item() == pytest.approx(0.65, rel=1e-6)


def test_dr_grpo_only_subtracts_the_group_mean() -> None:
    """scale="none": [0.2, 0.5, 0.8] -> [-0.3, 0, 0.3]; [3, 1, 2] -> [1, -1, 0]: no division,
    so the advantage keeps the reward's scale (Dr. GRPO removes the std normalisation)."""
    r = torch.tensor([0.2, 0.5, 0.8, 3.0, 1.0, 2.0])
    adv, _ = group_advantages(r, 3, scale="none")
    torch.testing.assert_close(adv, torch.tensor([-0.3, 0.0, 0.3, 1.0, -1.0, 0.0]))
    adv, _ = group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), 4, scale="none")
    torch.testing.assert_close(adv, torch.tensor([0.5, -0.5, -0.5, 0.5]))


def test_rloo_leave_one_out_by_hand() -> None:
    """A_i = r_i - mean of the *other* rewards of the group.

    [1, 0, 0, 1]: A_0 = 1 - (0 + 0 + 1)/3 = 2/3, A_1 = 0 - (1 + 0 + 1)/3 = -2/3.
    [4, 2, 0]:    A_0 = 4 - (2 + 0)/2 = 3, A_1 = 2 - (4 + 0)/2 = 0, A_2 = 0 - (4 + 2)/2 = -3.
    [1, 1, 1] is degenerate -> 0; std of [4, 2, 0] = sqrt((4 + 0 + 4) / 2) = 2, so
    reward_std_mean = (2 + 0) / 2 = 1 and zero_std_fraction = 1/2.
    """
    adv, _ = rloo_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), 4)
    torch.testing.assert_close(adv, torch.tensor([2 / 3, -2 / 3, -2 / 3, 2 / 3]))
    adv, stats = rloo_advantages(torch.tensor([4.0, 2.0, 0.0, 1.0, 1.0, 1.0]), 3)
    torch.testing.assert_close(adv, torch.tensor([3.0, 0.0, -3.0, 0.0, 0.0, 0.0]))
    assert stats["zero_std_fraction"].item() == 0.5
    assert stats["reward_std_mean"].item() == pytest.approx(1.0)


def test_reinforce_pp_normalises_by_the_batch_std() -> None:
    """Groups [3, 1] and [0, 2]: A' = r - group mean = [1, -1, -1, 1]; batch unbiased std =
    sqrt(4 / 3) -> A = +-sqrt(3)/2 = +-0.8660. GRPO would divide each group by its own std
    sqrt(2) -> +-0.7071: the two estimators differ exactly in the std's scope."""
    r = torch.tensor([3.0, 1.0, 0.0, 2.0])
    adv, _ = reinforce_pp_advantages(r, 2, eps=0.0)
    h = SQRT3 / 2
    torch.testing.assert_close(adv, torch.tensor([h, -h, -h, h]))
    grpo, _ = group_advantages(r, 2, eps=0.0)
    s = 1 / math.sqrt(2)
    torch.testing.assert_close(grpo, torch.tensor([s, -s, -s, s]))


def test_reinforce_pp_degenerate_group_keeps_zero_and_shrinks_the_std() -> None:
    """Groups [1, 0] and [1, 1]: A' = [0.5, -0.5, 0, 0]; the batch std counts the degenerate
    group's zeros: sqrt(0.5 / 3) = sqrt(1/6) -> A = [+-0.5 * sqrt(6), 0, 0] = [+-1.2247, 0, 0]."""
    adv, stats = reinforce_pp_advantages(torch.tensor([1.0, 0.0, 1.0, 1.0]), 2)
    h = 0.5 * math.sqrt(6)
    torch.testing.assert_close(adv, torch.tensor([h, -h, 0.0, 0.0]), rtol=1e-5, atol=1e-5)
    assert adv[2].item() == 0.0 and adv[3].item() == 0.0
    assert stats["zero_std_fraction"].item() == 0.5


@pytest.mark.parametrize(
    "estimate",
    [
        lambda r, g: group_advantages(r, g),
        lambda r, g: group_advantages(r, g, eps=0.0),
        lambda r, g: group_advantages(r, g, scale="none"),
        lambda r, g: rloo_advantages(r, g),
        lambda r, g: reinforce_pp_advantages(r, g),
        lambda r, g: reinforce_pp_advantages(r, g, eps=0.0),
    ],
    ids=["grpo", "grpo_eps0", "dr_grpo", "rloo", "reinforce_pp", "reinforce_pp_eps0"],
)
def test_degenerate_groups_get_exactly_zero_advantage(estimate) -> None:
    """All-equal groups carry no signal. In float32 mean([0.9] * 8) != 0.9 (a ~6e-8 residue),
    and dividing that residue by std + eps ~ 1e-6 would give +-0.056 instead of 0; eps = 0
    would give 0/0. Every estimator returns exact zeros and counts the groups."""
    r = torch.tensor([0.9] * 8 + [0.0] * 8)
    adv, stats = estimate(r, 8)
    assert torch.equal(adv, torch.zeros(16))
    assert stats["zero_std_fraction"].item() == 1.0
    assert stats["reward_std_mean"].item() == pytest.approx(0.0, abs=1e-7)


def test_zero_std_fraction_counts_groups_not_rows() -> None:
    """Four groups of 2: [1, 1] and [0, 0] agree, [1, 0] and [0.5, 0.25] do not -> 2/4."""
    r = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.5, 0.25])
    for fn in (group_advantages, rloo_advantages, reinforce_pp_advantages):
        _, stats = fn(r, 2)
        assert stats["zero_std_fraction"].item() == 0.5


def test_int_rewards_are_promoted_and_results_detached() -> None:
    adv, _ = group_advantages(torch.tensor([1, 0, 0, 1]), 4, scale="none")
    assert adv.dtype == torch.float32
    r = torch.tensor([1.0, 0.0, 0.0, 1.0], requires_grad=True)
    for fn in (group_advantages, rloo_advantages, reinforce_pp_advantages):
        adv, stats = fn(r, 2)
        assert not adv.requires_grad
        assert all(not v.requires_grad and v.dim() == 0 for v in stats.values())
    adv64, _ = rloo_advantages(torch.tensor([1.0, 0.0], dtype=torch.float64), 2)
    assert adv64.dtype == torch.float64


@pytest.mark.parametrize("fn", [group_advantages, rloo_advantages, reinforce_pp_advantages])
def test_bad_layouts_raise_value_error(fn) -> None:
    six = torch.arange(6.0)
    with pytest.raises(ValueError, match="do not split into groups of 4"):
        fn(six, 4)
    with pytest.raises(ValueError, match="group_size must be >= 2"):
        fn(six, 1)
    with pytest.raises(ValueError, match="group_size must be >= 2"):
        fn(six, 0)
    with pytest.raises(ValueError, match="1-D"):
        fn(six.view(2, 3), 3)
    with pytest.raises(ValueError, match="empty"):
        fn(torch.tensor([]), 2)
    with pytest.raises(ValueError, match=r"non-finite reward at row\(s\) 1, 4"):
        fn(torch.tensor([0.0, float("nan"), 1.0, 0.0, float("inf"), 1.0]), 2)


def test_bad_options_raise_value_error() -> None:
    r = torch.tensor([1.0, 0.0])
    with pytest.raises(ValueError, match="scale"):
        group_advantages(r, 2, scale="mad")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="eps"):
        group_advantages(r, 2, eps=-1.0)
    with pytest.raises(ValueError, match="eps"):
        reinforce_pp_advantages(r, 2, eps=-1.0)
