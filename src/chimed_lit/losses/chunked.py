"""The LM head and next-token cross-entropy in chunks of tokens (`stage.module.loss_chunk`).

The plain path materialises `[tokens, vocab]` logits, keeps them (and their log-softmax) for
the backward, and allocates a gradient of the same size: for a 152k vocabulary (Qwen) and
4,096 tokens that is 2.5 GB per copy in fp32. Here the head's matmul, the loss and both
gradients (of the hidden states and of the head's weight) are computed `chunk` rows at a time
in the forward, so no `[tokens, vocab]` tensor outlives its chunk; the backward only scales
the stored gradients (the approach of Liger's fused linear cross-entropy). Same loss and
gradients as the plain path up to rounding (tests/foundation/test_chunked_loss.py).

It applies to heads that are a bias-free `nn.Linear` on the final hidden states with nothing
after it (`plain_head`), unsharded; other models keep the plain path.

The trade: between forward and backward it holds the head's weight gradient in fp32
(`[vocab, hidden]`, 3.1 GB for 152k x 5120) instead of `[tokens, vocab]` fp32 logits, so it
saves memory when a micro-batch has well over `hidden` tokens (at 4,096 tokens and hidden
5,120 the two are level; `chimed-lit plan` counts both ways).
"""

from __future__ import annotations

import torch

from chimed_lit.losses.causal_lm import IGNORE

# model types whose logits are exactly `lm_head(final hidden states)`: no softcapping,
# logit scaling or normalised head
PLAIN_HEAD_TYPES = ("llama", "qwen2", "qwen3", "mistral")


def plain_head(model: torch.nn.Module) -> torch.nn.Linear | None:
    """The output `nn.Linear` of `model` (peft passes the lookup through) when the chunked loss
    computes its logits exactly (a known model type, no bias, weight neither a DTensor shard
    nor a ZeRO-3 partition); None otherwise."""
    if getattr(model.config, "model_type", None) not in PLAIN_HEAD_TYPES:
        return None
    head = model.get_output_embeddings()
    if type(head) is not torch.nn.Linear or head.bias is not None:
        return None
    weight = head.weight
    if hasattr(weight, "ds_id") or type(weight).__name__ == "DTensor":
        return None
    return head


class _LinearCrossEntropy(torch.autograd.Function):
    """Summed CE of `hidden @ weight.T` against `target` (IGNORE skipped); gradients are
    computed chunk by chunk in the forward when an input needs them."""

    @staticmethod
    def forward(
        ctx, hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, chunk: int
    ) -> torch.Tensor:
        want_h, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_h = torch.empty_like(hidden) if want_h else None
        grad_w = (
            torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if want_w else None
        )
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk):
            h, t = hidden[start : start + chunk], target[start : start + chunk]
            logits = (h @ weight.T).float()
            lse = torch.logsumexp(logits, -1)
            valid = t != IGNORE
            safe = t.clamp(min=0)
            total += ((lse - logits.gather(-1, safe[:, None])[:, 0]) * valid).sum()
            if want_h or want_w:  # d(lse - z_t)/dz = softmax(z) - onehot(t), rows of IGNORE 0
                p = logits.sub_(lse[:, None]).exp_()
                p.scatter_add_(-1, safe[:, None], -torch.ones_like(lse)[:, None])
                p.mul_(valid[:, None].to(p.dtype))
                p = p.to(weight.dtype)
                if want_h:
                    grad_h[start : start + chunk] = (p @ weight).to(hidden.dtype)
                if want_w:
                    grad_w += (p.T @ h).float()
        ctx.save_for_backward(grad_h, grad_w)
        ctx.dtypes = (hidden.dtype, weight.dtype)
        return total

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        # scaled in place: the stored gradients are used once, and a copy of the fp32
        # [vocab, hidden] weight gradient would double the largest buffer here
        grad_h, grad_w = ctx.saved_tensors
        h_dtype, w_dtype = ctx.dtypes
        gh = grad_h.mul_(grad_out).to(h_dtype) if grad_h is not None else None
        gw = grad_w.mul_(grad_out).to(w_dtype) if grad_w is not None else None
        return gh, gw, None, None


def chunked_causal_lm_loss(
    hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, chunk: int
) -> tuple[torch.Tensor, dict]:
    """`losses.causal_lm_loss` of the logits `hidden @ weight.T` without materialising them:
    `hidden` [batch, T, H], `labels` aligned with the inputs (position t predicts t+1)."""
    if chunk < 1:
        raise ValueError(f"loss_chunk must be a positive number of tokens (got {chunk})")
    shift = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=IGNORE).reshape(-1)
    loss_sum = _LinearCrossEntropy.apply(hidden.reshape(-1, hidden.shape[-1]), weight, shift, chunk)
    n_tokens = (shift != IGNORE).sum()
    return loss_sum / n_tokens.clamp(min=1), {"loss_sum": loss_sum.detach(), "n_tokens": n_tokens}
