"""The chunked LM head + cross-entropy (`stage.module.loss_chunk`): the same loss and
gradients as the full logits, no `[tokens, vocab]` tensor kept for the backward, the same
training under the real Lightning Trainer, and the plain path for heads it cannot compute."""

from __future__ import annotations

import copy
from functools import partial

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from chimed_lit.losses.causal_lm import IGNORE, causal_lm_loss
from chimed_lit.losses.chunked import chunked_causal_lm_loss, plain_head
from chimed_lit.models.factory import ModelFactory
from chimed_lit.modules.causal_lm import CausalLMModule

ARCH = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    factory = ModelFactory(cache_dir=str(tmp_path_factory.mktemp("chunk")), arch=ARCH)
    tok = factory.load_tokenizer()
    torch.manual_seed(0)
    return factory.load_causal_lm(tok).train(), tok


def _batch(vocab: int, rows: int = 3, length: int = 20) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, vocab, (rows, length), generator=g)
    labels = ids.clone()
    labels[0, :7] = IGNORE  # a prompt that is not a target
    labels[-1, 12:] = IGNORE  # padding at the end
    return {"input_ids": ids, "labels": labels}


@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_same_loss_and_gradients_as_the_full_logits(chunk):
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(2, 9, 16, generator=g, requires_grad=True)
    weight = torch.randn(50, 16, generator=g, requires_grad=True)
    labels = torch.randint(0, 50, (2, 9), generator=g)
    labels[1, :4] = IGNORE
    want, want_stats = causal_lm_loss(hidden @ weight.T, labels)
    want_h, want_w = torch.autograd.grad(want * 3.0, (hidden, weight))
    got, stats = chunked_causal_lm_loss(hidden, weight, labels, chunk)
    got_h, got_w = torch.autograd.grad(got * 3.0, (hidden, weight))  # the upstream scale too
    torch.testing.assert_close(got, want)
    # 8 targets per row (t predicts t+1); row 1 loses labels 1..3 (label 0 is never a target)
    assert int(stats["n_tokens"]) == int(want_stats["n_tokens"]) == 2 * 8 - 3
    torch.testing.assert_close(got_h, want_h, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got_w, want_w, atol=1e-6, rtol=1e-5)
    with torch.no_grad():  # validation: the loss alone
        torch.testing.assert_close(chunked_causal_lm_loss(hidden, weight, labels, chunk)[0], want)
    with pytest.raises(ValueError, match="loss_chunk"):
        chunked_causal_lm_loss(hidden, weight, labels, 0)


def _saved_bytes(fn) -> int:
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn().backward()
    return total


def test_no_vocab_sized_tensor_is_kept_for_the_backward(tiny):
    model, tok = tiny
    vocab = model.config.vocab_size
    batch = _batch(vocab, rows=4, length=64)
    plain = CausalLMModule(copy.deepcopy(model), optimizer=None)
    chunked = CausalLMModule(copy.deepcopy(model), optimizer=None, loss_chunk=32)
    full = _saved_bytes(lambda: plain.loss(batch)[0])
    small = _saved_bytes(lambda: chunked.loss(batch)[0])
    # the plain path keeps at least the [256, vocab] fp32 log-softmax for its backward
    assert full - small >= 4 * 64 * vocab * 4
    torch.testing.assert_close(chunked.loss(batch)[0], plain.loss(batch)[0])


def test_trains_as_the_plain_loss_under_the_trainer(tiny):
    """SGD, whose steps are linear in the gradients (Adam would blow a rounding difference in a
    near-zero gradient up to a full step)."""
    model, tok = tiny
    batch = _batch(model.config.vocab_size, rows=6, length=24)
    data = [{k: v[i] for k, v in batch.items()} for i in range(6)]

    def fit(loss_chunk):
        module = CausalLMModule(
            copy.deepcopy(model),
            stage="pretrain",
            loss_chunk=loss_chunk,
            optimizer=partial(torch.optim.SGD, lr=0.5),
        )
        L.seed_everything(0, verbose=False)
        trainer = L.Trainer(
            max_steps=3,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
        )
        trainer.fit(module, train_dataloaders=DataLoader(data, batch_size=2))
        return module

    plain, chunked = fit(None), fit(16)
    for (name, a), b in zip(
        plain.model.named_parameters(), chunked.model.parameters(), strict=True
    ):
        torch.testing.assert_close(
            a, b, atol=1e-5, rtol=1e-4, msg=lambda m, name=name: f"{name}: {m}"
        )
    assert not torch.allclose(plain.model.lm_head.weight, model.lm_head.weight)  # it trained


def test_heads_it_cannot_compute_keep_the_plain_path(tiny):
    from transformers import GPT2Config, GPT2LMHeadModel

    model, tok = tiny
    assert plain_head(model) is model.lm_head
    gpt2 = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=100))
    assert plain_head(gpt2) is None  # a model type not known to be a plain head
    biased = copy.deepcopy(model)
    biased.lm_head = torch.nn.Linear(32, model.config.vocab_size, bias=True)
    assert plain_head(biased) is None
    module = CausalLMModule(biased, optimizer=None, loss_chunk=8)  # runs the full logits
    batch = _batch(model.config.vocab_size)
    torch.testing.assert_close(
        module.loss(batch)[0],
        causal_lm_loss(biased(input_ids=batch["input_ids"]).logits, batch["labels"])[0],
    )


def test_bf16_and_autocast_stay_within_bf16_rounding():
    """Half-precision runs: bf16 weights (`bf16-true`) and fp32 weights under CPU autocast
    (`bf16-mixed`). The weight gradient is summed over chunks in fp32, so it differs from the
    plain bf16 path by bf16 rounding only."""
    g = torch.Generator().manual_seed(0)
    hidden, weight = torch.randn(2, 33, 64, generator=g), torch.randn(500, 64, generator=g)
    labels = torch.randint(0, 500, (2, 33), generator=g)
    for dtype, autocast in ((torch.bfloat16, False), (torch.float32, True)):
        h = hidden.to(dtype).requires_grad_()
        w = weight.to(dtype).requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            want, _ = causal_lm_loss(h @ w.T, labels)
            want_g = torch.autograd.grad(want, (h, w))
            got, _ = chunked_causal_lm_loss(h, w, labels, 16)
            got_g = torch.autograd.grad(got, (h, w))
        torch.testing.assert_close(got, want, atol=1e-3, rtol=1e-3)
        for a, b in zip(want_g, got_g, strict=True):
            assert b.dtype == dtype
            assert float((a.float() - b.float()).abs().max() / a.float().abs().max()) < 0.02
