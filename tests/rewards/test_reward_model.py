"""`reward_model`: the sequence the reward model was trained on, batched scores, normalisation."""

from __future__ import annotations

import pytest
import torch

from chimed_lit.data.preference import PreferenceDataModule
from chimed_lit.modules.reward import score_sequences
from chimed_lit.rewards import reward_model as rm
from chimed_lit.rewards.compose import build_rewards
from tests.rewards import records

RESPONSES = ["C", "答案是出血量，出血越多越易呕血。", "少盐少油，规律服药，监测血压变化。"]


def _records() -> list[dict]:
    return [records.mcq("C"), records.mcq("C"), records.free()]


def test_sequence_is_what_the_preference_data_trains_on(demo_tok) -> None:
    dm = PreferenceDataModule(tokenizer=demo_tok, max_length=512, template="chimed")
    for rec, response in zip(_records(), RESPONSES, strict=True):
        pair = {
            "prompt": [{"role": "user", "content": rec["question"]}],
            "chosen": response,
            "rejected": "x",
        }
        assert rm.sequence_ids(demo_tok, rec, response) == dm.tokenize(pair)["chosen_ids"]
    ids = rm.sequence_ids(demo_tok, records.free(), "好")
    assert ids[-1] == demo_tok.eos_token_id  # the end-of-turn token is scored


def test_messages_carry_the_whole_conversation(demo_tok) -> None:
    rec = {
        **records.free(),
        "messages": [
            {"role": "user", "content": "头痛怎么办？"},
            {"role": "assistant", "content": "多休息。"},
            {"role": "user", "content": "还有呢？"},
            {"role": "assistant", "content": "参考答案，不属于提示。"},
        ],
    }
    turns = rm.conversation(rec, "多喝水。")
    assert [t["content"] for t in turns] == ["头痛怎么办？", "多休息。", "还有呢？", "多喝水。"]


def test_batched_scores_equal_single_scores_normalised(demo_tok, tiny_rm) -> None:
    reward = rm.make(
        reward_model=tiny_rm, tokenizer=demo_tok, batch_size=2, reward_mean=0.25, reward_std=2.0
    )
    got = reward(_records(), RESPONSES)
    with torch.no_grad():
        alone = [
            score_sequences(
                tiny_rm, torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long)
            ).item()
            for ids in (
                rm.sequence_ids(demo_tok, r, s) for r, s in zip(_records(), RESPONSES, strict=True)
            )
        ]
    assert got == pytest.approx([(x - 0.25) / 2.0 for x in alone], abs=1e-5)
    assert len(set(round(x, 6) for x in got)) == 3  # the responses are told apart


def test_normalisation_read_from_the_model_config(demo_tok, tiny_rm, monkeypatch) -> None:
    plain = rm.make(reward_model=tiny_rm, tokenizer=demo_tok)
    monkeypatch.setattr(tiny_rm.config, "reward_mean", None, raising=False)
    monkeypatch.setattr(tiny_rm.config, "reward_std", None, raising=False)
    raw = rm.make(reward_model=tiny_rm, tokenizer=demo_tok)(_records(), RESPONSES)
    monkeypatch.setattr(tiny_rm.config, "reward_mean", 1.0)
    monkeypatch.setattr(tiny_rm.config, "reward_std", 4.0)
    normalised = rm.make(reward_model=tiny_rm, tokenizer=demo_tok)(_records(), RESPONSES)
    assert normalised == pytest.approx([(x - 1.0) / 4.0 for x in raw], abs=1e-6)
    assert plain.mean == 0.0 and plain.std == 1.0


def test_through_the_composite(demo_tok, tiny_rm) -> None:
    rewards = build_rewards(
        {"reward_model": 1.0, "format": 0.5},
        {"reward_model": {"reward_mean": 0.0, "reward_std": 1.0}},
        reward_model=tiny_rm,
        tokenizer=demo_tok,
    )
    total, parts = rewards(_records(), RESPONSES)
    direct = rm.make(reward_model=tiny_rm, tokenizer=demo_tok, reward_mean=0.0, reward_std=1.0)
    assert parts["reward_model"].tolist() == pytest.approx(direct(_records(), RESPONSES), abs=1e-5)
    assert total.tolist() == pytest.approx((parts["reward_model"] + 0.5 * parts["format"]).tolist())


def test_max_length_keeps_the_response_end(demo_tok, tiny_rm) -> None:
    cut = rm.make(reward_model=tiny_rm, tokenizer=demo_tok, max_length=8)
    long = rm.sequence_ids(demo_tok, records.mcq("C"), "C")
    assert len(long) > 8
    expected = score_sequences(
        tiny_rm, torch.tensor([long[-8:]]), torch.ones(1, 8, dtype=torch.long)
    )
    assert cut([records.mcq("C")], ["C"]) == pytest.approx([expected.item()], abs=1e-5)
