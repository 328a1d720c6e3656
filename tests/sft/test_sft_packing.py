"""Packing must not change what is learned: each example's summed loss is the same packed
(position-id resets, no attention_mask) as padded alone (attention_mask from lengths)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from chimed_lit.data.packing import IGNORE, pack_labelled


def _token_losses(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Loss of predicting labels[t + 1] at t (0 where ignored), shape [batch, T - 1]."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs, use_cache=False).logits[:, :-1].float()
    target = batch["labels"][:, 1:]
    loss = F.cross_entropy(logits.transpose(1, 2), target.clamp(min=0), reduction="none")
    return loss * (target != IGNORE)


@pytest.fixture(scope="module")
def tiny_llama(tok):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tok.pad_token_id,
        attn_implementation="sdpa",
    )
    return LlamaForCausalLM(config).float().eval()


def test_pack_labelled_layout():
    rows = pack_labelled(
        [[1, 2, 3], [4, 5], [6, 7, 8, 9]],
        [[-100, 2, 3], [4, 5], [6, -100, 8, 9]],
        capacity=6,
        pad_id=0,
    )
    assert rows["input_ids"] == [[4, 5, 6, 7, 8, 9], [1, 2, 3, 0, 0, 0]]
    assert rows["labels"] == [[-100, 5, -100, -100, 8, 9], [-100, 2, 3, -100, -100, -100]]
    assert rows["position_ids"] == [[0, 1, 0, 1, 2, 3], [0, 1, 2, 0, 1, 2]]


def test_packed_and_padded_losses_agree(tok, tiny_llama, make_dm):
    knobs = dict(max_records=12, max_length=96)
    plain = make_dm(None, **knobs)  # None: the shipped demo SFT data
    packed = make_dm(None, pack=True, **knobs)
    n = len(plain.train_dataset)
    assert packed.stats["train_blocks"] < n  # several examples share a block

    examples = [plain.train_dataset[i] for i in range(n)]
    with torch.no_grad():
        padded = _token_losses(tiny_llama, plain.collate(examples))
        blocks = packed.collate([packed.train_dataset[i] for i in range(len(packed.train_dataset))])
        assert set(blocks) == {"input_ids", "labels", "position_ids"}
        in_blocks = _token_losses(tiny_llama, blocks)
    alone = {
        tuple(ex["input_ids"].tolist()): padded[i].double().sum().item()
        for i, ex in enumerate(examples)
    }

    found = {}
    for row in range(blocks["input_ids"].size(0)):
        width = blocks["input_ids"].size(1)
        starts = (blocks["position_ids"][row] == 0).nonzero().flatten().tolist() + [width]
        for a, b in zip(starts[:-1], starts[1:], strict=True):
            key = tuple(blocks["input_ids"][row, a:b].tolist())
            if key in alone:  # else the padding tail
                found[key] = in_blocks[row, a : b - 1].double().sum().item()
    assert found.keys() == alone.keys()
    for key, value in alone.items():
        assert value > 0
        assert found[key] == pytest.approx(value, abs=1e-5)
