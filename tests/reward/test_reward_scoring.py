"""The reward of a response does not depend on what shares its batch: right padding, longer or
shorter neighbours, and a pad token equal to EOS all leave it unchanged."""

from __future__ import annotations

import pytest
import torch

from chimed_lit.chat.render import render_tokens
from chimed_lit.modules.reward import RewardModule, score_sequences

PROMPTS = ["头痛怎么办？", "发烧三天了，要去医院吗？孩子五岁，精神还可以。", "咳嗽"]
ANSWERS = ["多休息。", "建议尽快到儿科就诊，监测体温，多喝水，必要时查血常规。", "观察。"]


def _rows(tok) -> list[list[int]]:
    return [
        render_tokens(
            tok, [{"role": "user", "content": p}, {"role": "assistant", "content": a}]
        ).input_ids
        for p, a in zip(PROMPTS, ANSWERS, strict=True)
    ]


def _batch(tok, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r), 1
    return ids, mask


@pytest.mark.parametrize("tok_name", ["demo_tok", "eos_pad_tok"])
def test_reward_is_padding_and_batch_invariant(tok_name, request, tiny_reward_model):
    tok = request.getfixturevalue(tok_name)
    model = tiny_reward_model(tok)
    rows = _rows(tok)
    assert len({len(r) for r in rows}) == 3  # a shorter and a longer neighbour
    with torch.no_grad():
        alone = [score_sequences(model, *_batch(tok, [r])).item() for r in rows]
        batched = score_sequences(model, *_batch(tok, rows))
        reordered = score_sequences(model, *_batch(tok, rows[::-1]))
    assert torch.allclose(batched, torch.tensor(alone), atol=1e-5, rtol=0)
    assert torch.allclose(reordered.flip(0), torch.tensor(alone), atol=1e-5, rtol=0)
    assert len({round(a, 4) for a in alone}) == 3  # distinct rewards: the check has teeth


def test_reward_read_at_the_eos(eos_pad_tok, tiny_reward_model):
    """The head reads the last attended token, the response's EOS, even when pad == EOS."""
    tok, model = eos_pad_tok, tiny_reward_model(eos_pad_tok)
    row = _rows(tok)[0]
    assert row[-1] == tok.eos_token_id
    ids, mask = _batch(tok, [row, _rows(tok)[1]])
    with torch.no_grad():
        hidden = model.model(input_ids=ids[:1, : len(row)]).last_hidden_state
        at_eos = model.score(hidden[0, -1]).item()
        before_eos = model.score(hidden[0, -2]).item()
        ours = score_sequences(model, ids, mask)[0].item()
        theirs = model(input_ids=ids, attention_mask=mask).logits[0, 0].item()
    assert ours == pytest.approx(at_eos, abs=1e-5)
    # transformers' pooling takes the rightmost non-pad id: with pad == EOS, the token before it
    assert theirs == pytest.approx(before_eos, abs=1e-5) and abs(theirs - ours) > 1e-4


def test_matches_transformers_pooling_when_pad_differs(demo_tok, tiny_reward_model):
    model = tiny_reward_model(demo_tok)
    ids, mask = _batch(demo_tok, _rows(demo_tok))
    with torch.no_grad():
        theirs = model(input_ids=ids, attention_mask=mask).logits.squeeze(-1)
        ours = RewardModule(model)({"input_ids": ids, "attention_mask": mask})
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=0)
