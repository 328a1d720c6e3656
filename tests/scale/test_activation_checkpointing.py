"""`model.gradient_checkpointing=true`: same loss and gradients, far fewer saved activations."""

from __future__ import annotations

import torch

from chimed_lit.models.factory import ModelFactory

ARCH = {
    "hidden_size": 64,
    "intermediate_size": 176,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 128,
}


def _loss_and_grads(demo_tok, checkpointing: bool):
    torch.manual_seed(0)
    model = ModelFactory(arch=ARCH, gradient_checkpointing=checkpointing).load_causal_lm(demo_tok)
    model.train()
    ids = torch.randint(5, 500, (2, 24), generator=torch.Generator().manual_seed(1))
    saved = []  # tensors autograd keeps for backward: what checkpointing drops
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        loss = model(input_ids=ids, labels=ids, use_cache=False).loss
    loss.backward()
    return model, loss.detach(), {n: p.grad for n, p in model.named_parameters()}, len(saved)


def test_checkpointing_recomputes_and_changes_nothing_else(demo_tok):
    plain, loss_a, grads_a, saved_a = _loss_and_grads(demo_tok, False)
    ckpt, loss_b, grads_b, saved_b = _loss_and_grads(demo_tok, True)
    assert (
        ckpt.model.layers[0].gradient_checkpointing
        and not plain.model.layers[0].gradient_checkpointing
    )
    assert saved_b < saved_a / 3  # each layer keeps its input only, recomputes the rest
    torch.testing.assert_close(loss_a, loss_b, rtol=0, atol=0)
    for name, g in grads_a.items():
        torch.testing.assert_close(grads_b[name], g, rtol=1e-5, atol=1e-7)
