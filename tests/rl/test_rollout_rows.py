"""PPO's rollout rows (modules/rollout_rows.py): the layout and its packed view by hand, the
response-only forwards against a plain forward over each unpadded prompt + response, and the
packed (padding-free) forwards against the padded ones."""

from __future__ import annotations

import pytest
import torch

from chimed_lit.inference.generation import Sampling, generate
from chimed_lit.models.document_attention import spans_kwargs
from chimed_lit.models.factory import ModelFactory
from chimed_lit.modules.reward import score_sequences
from chimed_lit.modules.rollout_rows import layout, response_logits, response_logps, response_values

ARCH = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
}


def test_layout_by_hand() -> None:
    rows = layout(
        [[7, 8], [9]],
        [{"ids": [4], "finished": True}, {"ids": [5, 6], "finished": False}],
        eos=2,
        pad=0,
    )
    assert rows.ids.tolist() == [[7, 8, 4, 2], [0, 9, 5, 6]]
    assert rows.mask.tolist() == [[1, 1, 1, 1], [0, 1, 1, 1]]
    assert rows.positions.tolist() == [[0, 1, 2, 3], [0, 0, 1, 2]]
    assert rows.labels.tolist() == [[4, 2], [5, 6]]
    assert rows.rows(slice(1, 2)).labels.tolist() == [[5, 6]]
    short = layout([[7]], [{"ids": [], "finished": False}], eos=2, pad=0)
    assert short.labels.tolist() == [[-100]] and short.response_mask.sum() == 0


def test_pack_by_hand() -> None:
    """Real tokens side by side, positions restarting; grid cell (i, k) reads the token that
    predicts response token k of row i, and cells past a row's end read its last token."""
    rows = layout(
        [[7, 8], [9]],
        [{"ids": [4], "finished": True}, {"ids": [5, 6], "finished": False}],
        eos=2,
        pad=0,
    )
    packed = rows.pack()
    assert packed.packed and not rows.packed and packed.mask is None
    assert packed.ids.tolist() == [[7, 8, 4, 2, 9, 5, 6]]
    assert packed.positions.tolist() == [[0, 1, 2, 3, 0, 1, 2]]
    assert packed.keep.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert packed.last.tolist() == [3, 6]
    assert packed.labels.tolist() == rows.labels.tolist()
    uneven = layout(
        [[7, 8, 9], [3]],
        [{"ids": [], "finished": False}, {"ids": [5, 6, 4], "finished": True}],
        eos=2,
        pad=0,
    ).pack()
    # row 0 has no response: every cell reads its last prompt token (column 2)
    assert uneven.ids.tolist() == [[7, 8, 9, 3, 5, 6, 4, 2]]
    assert uneven.keep.tolist() == [[2, 2, 2, 2, 2], [3, 4, 5, 6, 7]]
    with pytest.raises(ValueError, match="padded layout"):
        packed.rows(slice(0, 1))


def _models(tmp_path, attn: str = "sdpa"):
    factory = ModelFactory(cache_dir=str(tmp_path), arch=ARCH, attn_implementation=attn)
    tok = factory.load_tokenizer()
    torch.manual_seed(0)
    return tok, factory.load_causal_lm(tok).eval(), factory.load_reward_model(tok).eval()


def test_response_forwards_match_unpadded_rows(tmp_path) -> None:
    """Left padding, position ids and the LM head kept to the response change nothing: each
    row's log-probs and values equal a forward over that row alone (no padding at all)."""
    tok, model, critic = _models(tmp_path)
    prompts = [tok("头痛怎么办")["input_ids"], tok("发烧三天，咳嗽，需要去医院吗")["input_ids"]]
    replies = [{"ids": [30, 31, 32], "finished": True}, {"ids": [40], "finished": False}]
    rows = layout(prompts, replies, tok.eos_token_id, tok.pad_token_id)
    assert rows.mask[0, 0] == 0  # the shorter prompt is left-padded
    with torch.no_grad():
        logps = response_logps(response_logits(model, rows), rows)
        values = response_values(critic, rows)
        for i, (p, r) in enumerate(zip(prompts, replies, strict=True)):
            resp = r["ids"] + ([tok.eos_token_id] if r["finished"] else [])
            ids = torch.tensor([p + resp])
            full = torch.log_softmax(model(input_ids=ids).logits[0, len(p) - 1 : -1], -1)
            want = full.gather(-1, torch.tensor(resp)[:, None])[:, 0]
            torch.testing.assert_close(logps[i, : len(resp)], want, atol=1e-5, rtol=0)
            assert (logps[i, len(resp) :] == 0).all()
            hidden = critic.model(input_ids=ids).last_hidden_state[0, len(p) - 1 : -1]
            torch.testing.assert_close(
                values[i, : len(resp)], critic.score(hidden)[:, 0], atol=1e-5, rtol=0
            )


def test_generation_logps_are_the_training_grid(tmp_path) -> None:
    """The behaviour log-probs from generation equal the actor's on the rollout rows, so the
    first PPO ratio is exactly 1 (the rows see each token where it was sampled)."""
    tok, model, _ = _models(tmp_path)
    prompts = [tok("头痛怎么办")["input_ids"], tok("孩子发烧，咳嗽三天")["input_ids"]]
    torch.manual_seed(1)
    replies = generate(
        model,
        tok,
        prompts,
        Sampling(max_new_tokens=5, do_sample=True, temperature=1.0, top_p=1.0, top_k=0),
        with_logps=True,
    )
    rows = layout(prompts, replies, tok.eos_token_id, tok.pad_token_id)
    with torch.no_grad():
        logps = response_logps(response_logits(model, rows), rows)
    for i, r in enumerate(replies):
        torch.testing.assert_close(logps[i, : len(r["logps"])], r["logps"], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("attn", ["sdpa", "sdpa_documents"])
def test_packed_forwards_equal_padded(tmp_path, attn: str) -> None:
    """Padding-free rows give the padded rows' log-probs, values and scores (and gradients),
    under transformers' block-diagonal mask (`sdpa`) and per-document calls (`sdpa_documents`)."""
    tok, model, critic = _models(tmp_path, attn)
    texts = [
        "头痛怎么办",
        "发烧三天，咳嗽，需要去医院吗",
        "孩子拉肚子",
        "高血压能喝酒吗？医生说要少喝",
        "失眠",
        "胃疼，吃了饭更疼",
    ]
    prompts = [tok(t)["input_ids"] for t in texts]
    torch.manual_seed(3)
    replies = [
        {"ids": torch.randint(10, 200, (n,)).tolist(), "finished": n % 2 == 0}
        for n in (3, 1, 5, 0, 4, 2)
    ]
    rows = layout(prompts, replies, tok.eos_token_id, tok.pad_token_id)
    packed = rows.pack()
    assert packed.ids.shape[1] == int(rows.mask.sum()) < rows.ids.numel()
    per_document = bool(spans_kwargs(model, packed.positions))
    assert per_document == (attn == "sdpa_documents")
    mask = rows.response_mask
    got, want = {}, {}
    for out, view in ((got, packed), (want, rows)):
        model.zero_grad()
        critic.zero_grad()
        logps = response_logps(response_logits(model, view), view)
        values = response_values(critic, view)
        ((logps * mask).sum() + (values * mask).square().sum()).backward()
        out["logps"], out["values"] = logps.detach() * mask, values.detach() * mask
        out["lm_grad"] = model.model.layers[0].self_attn.q_proj.weight.grad.clone()
        out["critic_grad"] = critic.model.layers[1].mlp.up_proj.weight.grad.clone()
        with torch.no_grad():
            out["score"] = score_sequences(
                critic,
                view.ids,
                view.mask,
                position_ids=view.positions,
                ends=view.last if view.packed else None,
            )
    for key in want:
        torch.testing.assert_close(got[key], want[key], atol=2e-5, rtol=1e-4, msg=key)
    assert want["lm_grad"].abs().sum() > 0 and want["critic_grad"].abs().sum() > 0
