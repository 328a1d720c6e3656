"""The clipped policy loss of the GRPO family, and loss aggregation over a ragged token grid.

One function covers GRPO, Dr. GRPO, DAPO and GSPO; they differ in three knobs:

* the clip range ``(1 - clip_low, 1 + clip_high)``: symmetric in PPO/GRPO, wider above in
  DAPO ("clip-higher");
* ``ratio_level``: a per-token importance ratio (PPO/GRPO/DAPO) or one per response (GSPO);
* ``aggregation``: how the ``[N, T]`` per-token losses become one scalar (``aggregate``).

Shapes: ``logp``, ``old_logp``, ``mask``: ``[N, T]`` (mask read as boolean, as everywhere in
``chimed_lit.losses.masked``); ``advantages``: ``[N]`` per response (broadcast over its
tokens) or ``[N, T]`` per token. Padding positions never reach a value or a gradient: the
log-ratio is selected to 0 there before ``exp``, so garbage (even inf/NaN) in padded slots of
``logp`` cannot produce NaN through the ``0 * inf`` of a masked-out branch.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from chimed_lit.losses.masked import masked_count, masked_mean, masked_sum

__all__ = [
    "AGGREGATIONS",
    "RATIO_LEVELS",
    "Aggregation",
    "RatioLevel",
    "aggregate",
    "policy_loss",
]

Aggregation = Literal["token_mean", "seq_mean_token_sum", "seq_mean_token_mean"]
RatioLevel = Literal["token", "sequence"]
AGGREGATIONS: tuple[str, ...] = ("token_mean", "seq_mean_token_sum", "seq_mean_token_mean")
RATIO_LEVELS: tuple[str, ...] = ("token", "sequence")


def aggregate(
    values: Tensor,
    mask: Tensor,
    mode: Aggregation = "token_mean",
    max_tokens: int | None = None,
) -> Tensor:
    """Reduce per-token ``values [N, T]`` over the valid positions of ``mask`` to a scalar.

    Modes (the names of verl's ``agg_loss``; Liu et al. 2025, "Understanding R1-Zero-Like
    Training", section 3.1, on why the choice biases the gradient by response length):

    * ``token_mean``: sum over every valid token of the batch / number of valid tokens. Every
      token weighs the same, so long responses weigh more: DAPO's token-level loss (Yu et al.
      2025, eq. 8, the ``1 / sum_i |o_i|`` normaliser; section 3.3).
    * ``seq_mean_token_mean``: mean over responses of each response's token mean. Every
      response weighs the same: GRPO's ``1/G sum_i 1/|o_i| sum_t`` (Shao et al. 2024,
      DeepSeekMath eq. 3).
    * ``seq_mean_token_sum``: mean over responses of each response's token sum. With
      ``max_tokens`` set, the sum of all token values / ``(N * max_tokens)``: Dr. GRPO's
      constant normaliser (Liu et al. 2025, section 3.2), where ``N = values.shape[0]``
      counts every row so the scale does not depend on the data.

    Responses with no valid token (e.g. removed by overlong filtering) are left out of the
    response count of the two ``seq_mean_*`` modes (as verl does), except under Dr. GRPO's
    constant normaliser. An empty mask gives 0 in every mode. ``max_tokens`` is ignored by
    the other two modes, so a caller may pass it unconditionally.
    """
    if mode not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {mode!r}")
    if values.dim() != 2:
        raise ValueError(f"aggregate: values must be [N, T], got shape {tuple(values.shape)}")
    if max_tokens is not None and (isinstance(max_tokens, bool) or max_tokens <= 0):
        raise ValueError(f"aggregate: max_tokens must be a positive int or None, got {max_tokens}")
    if mode == "token_mean":
        return masked_mean(values, mask)
    counts = masked_count(mask, values, dim=-1)  # [N] valid tokens per response
    if mode == "seq_mean_token_mean":
        per_seq = masked_sum(values, mask, dim=-1) / counts.clamp(min=1)
    else:
        per_seq = masked_sum(values, mask, dim=-1)
        if max_tokens is not None:
            return per_seq.sum() / (values.shape[0] * max_tokens)
    n_seqs = (counts > 0).to(values.dtype).sum()
    return per_seq.sum() / n_seqs.clamp(min=1)


def policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    ratio_level: RatioLevel = "token",
    aggregation: Aggregation = "token_mean",
    max_tokens: int | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped surrogate policy loss (to minimise) with an asymmetric clip range.

    Per token, PPO's pessimistic clipped objective (Schulman et al. 2017, eq. 7), negated:

        l_t = max(-A * w_t, -A * clip(w_t, 1 - clip_low, 1 + clip_high))

    with DAPO's decoupled bounds (Yu et al. 2025, "DAPO", eq. 8 and section 3.1,
    "clip-higher": a larger ``clip_high`` lets low-probability tokens grow, against entropy
    collapse), then ``aggregate(l, mask, aggregation, max_tokens)``. ``clip_low ==
    clip_high`` with ``ratio_level="token"`` and ``aggregation="token_mean"`` is exactly
    ``ppo_policy_loss``.

    ``ratio_level="token"``: ``w_t = exp(logp_t - old_logp_t)`` (PPO, GRPO, DAPO).

    ``ratio_level="sequence"``: GSPO (Zheng et al. 2025, "Group Sequence Policy
    Optimization", eq. 5 and 7): one importance ratio per response, the geometric mean of its
    token ratios, ``s_i = exp(1/|y_i| sum_t (logp - old_logp))``, clipped as a whole. It is
    built in the GSPO-token form (section 4.3):

        w_t = sg[s_i] * pi(y_t) / sg[pi(y_t)],  i.e.  log w_t = sg[log s_i] + logp_t - sg[logp_t]

    whose value is ``s_i`` on every token of response ``i`` and whose gradient is
    ``d w_t / d logp_t = s_i`` per token. With a per-response advantage and
    ``aggregation="seq_mean_token_mean"`` the resulting gradient equals GSPO's sequence-level
    one (``-A_i s_i / |y_i|`` per token and response); GSPO's recommended clip range is tiny
    (e.g. ``clip_low=3e-4, clip_high=4e-4``).

    ``old_logp`` and ``advantages`` are constants (detached). The ratio is not clamped (as in
    ``ppo_policy_loss``): a huge ratio with a negative advantage gives a huge loss, which a
    caller should see rather than have silently capped.

    Stats (detached scalars; token fractions over the mask):
    ``clip_fraction_low``: tokens with ``w < 1 - clip_low`` and ``A < 0`` (clipped from
    below: the clipped branch is active, zero gradient); ``clip_fraction_high``: ``w > 1 +
    clip_high`` and ``A > 0``; ``clip_fraction``: either (their sum; the same quantity as
    ``ppo_policy_loss``'s ``clipfrac``); ``approx_kl`` = 0.5 * mean((logp - old_logp)^2), the
    k2 estimate of KL(old || new) from the token log-ratios at either ratio level;
    ``ratio_mean``: token mean of ``w`` (under GSPO each response's ``s_i`` weighted by its
    length); ``policy_loss``.
    """
    if ratio_level not in RATIO_LEVELS:
        raise ValueError(f"ratio_level must be one of {RATIO_LEVELS}, got {ratio_level!r}")
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    if not clip_low > 0 or not clip_high > 0:
        raise ValueError(f"clip_low and clip_high must be > 0, got {clip_low}, {clip_high}")
    if clip_low >= 1:
        raise ValueError(f"clip_low must be < 1 (the lower bound is 1 - clip_low), got {clip_low}")
    if logp.dim() != 2 or old_logp.shape != logp.shape or mask.shape != logp.shape:
        raise ValueError(
            "policy_loss: logp, old_logp and mask must share one [N, T] shape, got "
            f"{tuple(logp.shape)}, {tuple(old_logp.shape)}, {tuple(mask.shape)}"
        )
    if advantages.shape == logp.shape[:1]:
        adv = advantages.detach()[:, None]
    elif advantages.shape == logp.shape:
        adv = advantages.detach()
    else:
        raise ValueError(
            f"policy_loss: advantages must be [N] or [N, T] with [N, T] = {tuple(logp.shape)}, "
            f"got {tuple(advantages.shape)}"
        )
    valid = mask.bool() if mask.dtype != torch.bool else mask
    zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
    log_ratio = torch.where(valid, logp - old_logp.detach(), zero)
    if ratio_level == "sequence":
        seq_log_ratio = masked_mean(log_ratio, valid, dim=-1)  # [N]: log s_i
        # GSPO-token: value log s_i, gradient 1 w.r.t. each token's own logp
        own = torch.where(valid, logp - logp.detach(), zero)
        ratio = torch.exp(seq_log_ratio.detach()[:, None] + own)
    else:
        ratio = torch.exp(log_ratio)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    loss = aggregate(torch.maximum(unclipped, clipped), valid, aggregation, max_tokens)
    with torch.no_grad():
        low = (ratio < 1.0 - clip_low) & (adv < 0)
        high = (ratio > 1.0 + clip_high) & (adv > 0)
        stats = {
            "policy_loss": loss.detach(),
            "clip_fraction_low": masked_mean(low.to(logp.dtype), valid),
            "clip_fraction_high": masked_mean(high.to(logp.dtype), valid),
            "clip_fraction": masked_mean((low | high).to(logp.dtype), valid),
            "approx_kl": masked_mean(0.5 * log_ratio**2, valid),
            "ratio_mean": masked_mean(ratio, valid),
        }
    return loss, stats
