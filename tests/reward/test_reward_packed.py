"""Padding-free pair batches (`data.pack=true`, the reward stage's default) give the same rewards,
loss and gradients as padded ones, while computing on far fewer positions."""

from __future__ import annotations

import torch

from chimed_lit.data.packing import pack_sequences
from chimed_lit.losses.preference import reward_pairwise_loss
from chimed_lit.modules.reward import RewardModule, score_sequences
from tests.conftest import shared


def test_pack_sequences_layout() -> None:
    """Hand-checked layout: capacity 5, lengths 3, 2, 4 -> best fit, longest first: row 0 holds
    the 4-sequence (1 free), row 1 the 3-sequence and then the 2-sequence."""
    seqs = [[1, 2, 3], [4, 5], [6, 7, 8, 9]]
    out = pack_sequences(seqs, capacity=5, pad_id=0)
    assert out["input_ids"].tolist() == [[6, 7, 8, 9, 0], [1, 2, 3, 4, 5]]
    assert out["position_ids"].tolist() == [[0, 1, 2, 3, 0], [0, 1, 2, 0, 1]]
    assert out["ends"].tolist() == [7, 9, 3]  # flat indices of 3, 5 and 9, in input order
    assert out["input_ids"].flatten()[out["ends"]].tolist() == [3, 5, 9]


def _dm(make_pref_dm, pack: bool):
    data = shared("preference/medicalgpt_reward_medical.jsonl")
    return make_pref_dm(
        [str(data)],
        max_length=128,
        max_records=40,
        pack=pack,
        batch_size=8,
        max_dropped_fraction=0.6,  # about half the pairs are longer than 128 tokens
    )


def test_packed_batches_score_like_padded(make_pref_dm, demo_tok, tiny_reward_model) -> None:
    padded_dm, packed_dm = _dm(make_pref_dm, False), _dm(make_pref_dm, True)
    examples = [padded_dm.train_dataset[i] for i in range(8)]
    padded, packed = padded_dm.collate(examples), packed_dm.collate(examples)
    assert (
        "attention_mask" not in packed
        and packed["input_ids"].numel() < 0.8 * padded["input_ids"].numel()
    )  # the point: fewer positions to compute
    assert torch.equal(packed["seq_lengths"], padded["attention_mask"].sum(-1))

    model = tiny_reward_model(demo_tok)
    module = RewardModule(model)
    a, b = module(padded), module(packed)
    assert torch.allclose(a, b, atol=1e-5, rtol=0)
    assert a.std() > 1e-3  # distinct rewards: the comparison has teeth

    grads = []
    for batch in (padded, packed):
        model.zero_grad()
        rewards = module(batch)
        loss, _ = reward_pairwise_loss(rewards[:8], rewards[8:], None, 0.0)
        loss.backward()
        grads.append(
            torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        )
    assert torch.allclose(grads[0], grads[1], atol=1e-5, rtol=1e-4)


def test_packed_sequences_do_not_see_each_other(demo_tok, tiny_reward_model) -> None:
    """A sequence's reward is the same alone and packed after another one (block-diagonal
    attention from the position-id resets, not a plain causal mask over the row)."""
    model = tiny_reward_model(demo_tok)
    first, second = [5, 6, 7, 8, 9, 10], [11, 12, 13, 14]
    with torch.no_grad():
        alone = score_sequences(model, torch.tensor([second]), torch.ones(1, 4, dtype=torch.long))
        packed = pack_sequences([first, second], capacity=16, pad_id=demo_tok.pad_token_id)
        both = score_sequences(
            model, packed["input_ids"], position_ids=packed["position_ids"], ends=packed["ends"]
        )
        causal = score_sequences(
            model, packed["input_ids"], torch.ones_like(packed["input_ids"]), ends=packed["ends"]
        )
    assert torch.allclose(both[1], alone[0], atol=1e-5)
    assert not torch.allclose(causal[1], alone[0], atol=1e-3)  # what a plain mask would give


def test_reward_stage_packs_and_dpo_refuses_packing(run_cli, tmp_path) -> None:
    r = run_cli("fit", "stage=reward", "--cfg", "job", f"paths.output_dir={tmp_path}")
    assert r.code == 0, r.err
    assert "  pack: true" in r.out
    r = run_cli("fit", "stage=dpo", "data.pack=true", f"paths.output_dir={tmp_path}")
    assert r.code == 2
    assert "data.pack=true with stage=dpo" in r.err
    assert not (tmp_path / "pretrain").exists()  # refused before any stage trained
