"""`DPOModule` pieces on tiny random models: which tokens are scored, one forward per model per
batch, the reference without gradients, and every loss type learning its pairs."""

from __future__ import annotations

import pytest
import torch

from chimed_lit.losses.causal_lm import IGNORE
from chimed_lit.modules.dpo import LOSS_TYPES, DPOModule, response_labels


def test_labels_cover_exactly_each_response(pref_batch, demo_tok):
    labels = response_labels(pref_batch)
    lengths = pref_batch["attention_mask"].sum(-1)
    on = labels != IGNORE
    assert torch.equal(on.sum(-1), pref_batch["response_lengths"])
    for row in range(labels.shape[0]):
        idx = on[row].nonzero().flatten()
        assert idx[-1] == lengths[row] - 1  # the response ends at the last attended token (EOS)
        assert idx[-1] - idx[0] + 1 == len(idx)  # one contiguous span
        assert labels[row, idx[-1]] == demo_tok.eos_token_id
    n = pref_batch["n_pairs"]
    # the pair shares its prompt: the tokens before each response are the same
    for i in range(n):
        c0 = int(lengths[i] - pref_batch["response_lengths"][i])
        r0 = int(lengths[n + i] - pref_batch["response_lengths"][n + i])
        assert torch.equal(pref_batch["input_ids"][i, :c0], pref_batch["input_ids"][n + i, :r0])


def test_one_forward_per_model_and_reference_without_grad(pref_batch, tiny_lm):
    policy, ref = tiny_lm(0), tiny_lm(0)
    calls: dict[str, list[tuple[int, bool]]] = {"policy": [], "ref": []}
    for name, model in (("policy", policy), ("ref", ref)):
        model.register_forward_hook(
            lambda m, a, kw, out, name=name: calls[name].append(
                (kw["input_ids"].shape[0], torch.is_grad_enabled())
            ),
            with_kwargs=True,
        )
    module = DPOModule(policy, ref, beta=0.1)
    loss, stats = module.pair_loss(pref_batch)
    rows = 2 * pref_batch["n_pairs"]
    assert calls == {"policy": [(rows, True)], "ref": [(rows, False)]}
    # same weights: every implicit reward is 0, the loss is log 2 and no pair is won
    assert loss.item() == pytest.approx(torch.log(torch.tensor(2.0)).item(), abs=1e-5)
    assert stats["accuracy"].item() == 0.0
    loss.backward()
    assert all(p.grad is None for p in ref.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.parameters())


def test_reference_free_losses_need_no_reference(tiny_lm):
    for loss_type in ("orpo", "simpo"):
        assert DPOModule(tiny_lm(0), None, loss_type=loss_type).ref is None
    with pytest.raises(ValueError, match="reference"):
        DPOModule(tiny_lm(0), None, loss_type="sigmoid")
    with pytest.raises(ValueError, match="loss_type"):
        DPOModule(tiny_lm(0), tiny_lm(0), loss_type="kto")


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_each_loss_type_learns_its_pairs(loss_type, pref_batch, tiny_lm):
    """A few AdamW steps on one batch lower the loss and win the pairs."""
    policy = tiny_lm(1)
    ref = None if loss_type in ("orpo", "simpo") else tiny_lm(1)
    module = DPOModule(policy, ref, loss_type=loss_type, beta=0.5 if loss_type == "ipo" else 0.1)
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    first, _ = module.pair_loss(pref_batch)
    for _ in range(12):
        loss, _ = module.pair_loss(pref_batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        last, stats = module.pair_loss(pref_batch)
    assert last.item() < first.item(), (loss_type, first.item(), last.item())
    assert stats["accuracy"].item() == 1.0, loss_type


def test_policy_dropout_is_off_by_default(demo_tok):
    """A policy with dropout (a LLaMA's `attention_dropout`) gives the same log-probs twice in
    train mode under DPO's default; `disable_dropout=false` keeps it."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(demo_tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        attention_dropout=0.5,
        attn_implementation="eager",
    )
    ids = torch.tensor([demo_tok("头痛怎么办，发烧三天")["input_ids"]])

    def policy():
        torch.manual_seed(0)
        return LlamaForCausalLM(config).train()

    def twice_same(model) -> bool:
        return torch.equal(model(input_ids=ids).logits, model(input_ids=ids).logits)

    assert twice_same(DPOModule(policy(), ref=policy()).model)
    assert not twice_same(DPOModule(policy(), ref=policy(), disable_dropout=False).model)
