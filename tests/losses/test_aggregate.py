"""Hand-computed tests for chimed_lit.losses.policy.aggregate: token-mean (DAPO, Yu et al. 2025,
eq. 8), sequence-mean-token-mean (GRPO, Shao et al. 2024, eq. 3), sequence-mean-token-sum and
Dr. GRPO's constant normaliser (Liu et al. 2025, section 3.2)."""

import pytest
import torch

from chimed_lit.losses import aggregate

NAN = float("nan")


def _ragged() -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of 3, 1, 2 and 0 valid tokens; NaN in every padded slot (must never leak).

    valid values: row 0 [1, 2, 3] (sum 6, mean 2); row 1 [4] (sum 4, mean 4);
    row 2 [5, 6] (sum 11, mean 5.5); row 3 empty.
    """
    values = torch.tensor(
        [
            [1.0, 2.0, 3.0, NAN],
            [4.0, NAN, NAN, NAN],
            [5.0, 6.0, NAN, NAN],
            [NAN, NAN, NAN, NAN],
        ],
        requires_grad=True,
    )
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]])
    return values, mask


VALID = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.float32)
ROW_LEN = torch.tensor([[3.0], [1.0], [2.0], [1.0]])  # row 3's entry is unused (no valid token)


@pytest.mark.parametrize(
    ("mode", "max_tokens", "expected", "grad"),
    [
        # (1+2+3+4+5+6) / 6 tokens; each valid token weighs 1/6
        ("token_mean", None, 21 / 6, VALID / 6),
        # max_tokens is ignored outside seq_mean_token_sum
        ("token_mean", 4, 21 / 6, VALID / 6),
        # (2 + 4 + 5.5) / 3 non-empty responses; a token of a response of length L weighs 1/(3L)
        ("seq_mean_token_mean", None, 11.5 / 3, VALID / (3 * ROW_LEN)),
        ("seq_mean_token_mean", 4, 11.5 / 3, VALID / (3 * ROW_LEN)),
        # (6 + 4 + 11) / 3 non-empty responses; every token weighs 1/3
        ("seq_mean_token_sum", None, 21 / 3, VALID / 3),
        # Dr. GRPO: 21 / (N * max_tokens) = 21 / (4 rows * 4): the empty row still counts
        ("seq_mean_token_sum", 4, 21 / 16, VALID / 16),
        ("seq_mean_token_sum", 10, 21 / 40, VALID / 40),
    ],
)
def test_each_mode_on_a_ragged_mask_by_hand(mode, max_tokens, expected, grad) -> None:
    values, mask = _ragged()
    out = aggregate(values, mask, mode, max_tokens)
    assert out.item() == pytest.approx(expected, rel=1e-6)
    out.backward()
    torch.testing.assert_close(values.grad, grad)  # 0 (not NaN) in every padded slot


def test_dr_grpo_weight_per_token_does_not_depend_on_lengths() -> None:
    """The constant normaliser gives every token 1/(N * max_tokens) whatever the response
    lengths, so a long wrong answer is not diluted (Dr. GRPO's fix of the length bias);
    seq_mean_token_mean instead gives a token of a longer response a smaller weight."""
    values = torch.ones(2, 8, requires_grad=True)
    mask = torch.tensor([[1] * 2 + [0] * 6, [1] * 8])
    aggregate(values, mask, "seq_mean_token_sum", max_tokens=8).backward()
    torch.testing.assert_close(values.grad, mask.float() / 16)
    values.grad = None
    aggregate(values, mask, "seq_mean_token_mean").backward()
    torch.testing.assert_close(values.grad[0, 0], torch.tensor(1 / 4))  # 1 / (2 rows * 2)
    torch.testing.assert_close(values.grad[1, 0], torch.tensor(1 / 16))  # 1 / (2 rows * 8)


@pytest.mark.parametrize("mode", ["token_mean", "seq_mean_token_sum", "seq_mean_token_mean"])
def test_empty_mask_gives_zero(mode) -> None:
    values = torch.full((2, 3), NAN)
    for max_tokens in (None, 5):
        assert aggregate(values, torch.zeros(2, 3), mode, max_tokens).item() == 0.0


def test_bad_arguments_raise_value_error() -> None:
    values, mask = _ragged()
    with pytest.raises(ValueError, match="aggregation must be one of"):
        aggregate(values, mask, "sum")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_tokens"):
        aggregate(values, mask, "seq_mean_token_sum", 0)
    with pytest.raises(ValueError, match=r"\[N, T\]"):
        aggregate(values[0], mask[0], "token_mean")
