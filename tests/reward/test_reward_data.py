"""Preference records of every shape become pairs rendered as the policy renders them; bad pairs
are named by file, line and field; truncation keeps the response and cuts the prompt."""

from __future__ import annotations

import pytest
import torch

from chimed_lit.chat.render import render_tokens
from chimed_lit.io.errors import DataError

Q, C, R = "头痛怎么办？", "先休息，持续不缓解请就医。", "随便吃点药。"
USER = [{"role": "user", "content": Q}]
SHAPES = {
    "question": {"question": Q, "response_chosen": C, "response_rejected": R},
    "prompt string": {"prompt": Q, "chosen": C, "rejected": R},
    "prompt messages": {"prompt": USER, "chosen": C, "rejected": R},
    "conversations": {"conversations": [{"from": "human", "value": Q}], "chosen": C, "rejected": R},
    "ranked": {"prompt": Q, "responses": [R, C], "ranks": [2, 1]},
}


def _ids(tok, prompt, response):
    return render_tokens(tok, [*prompt, {"role": "assistant", "content": response}]).input_ids


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_shape_renders_like_the_policy(shape, demo_tok, write_jsonl, make_pref_dm):
    dm = make_pref_dm([write_jsonl([SHAPES[shape]])])
    assert dm.stats["train_pairs"] == 1
    ex = dm.train_dataset[0]
    assert ex["chosen_ids"].tolist() == _ids(demo_tok, USER, C)
    assert ex["rejected_ids"].tolist() == _ids(demo_tok, USER, R)
    assert ex["chosen_ids"][-1].item() == demo_tok.eos_token_id  # the reward is read at EOS
    assert demo_tok.decode(ex["chosen_ids"][-ex["chosen_response_len"] :]) == C + demo_tok.eos_token


def test_multi_turn_prompt_with_system(demo_tok, write_jsonl, make_pref_dm):
    convs = [
        {"from": "system", "value": "你是医生。"},
        {"from": "human", "value": "我发烧了。"},
        {"from": "gpt", "value": "多少度？"},
        {"from": "human", "value": Q},
    ]
    dm = make_pref_dm([write_jsonl([{"conversations": convs, "chosen": C, "rejected": R}])])
    prompt = [
        {"role": "system", "content": "你是医生。"},
        {"role": "user", "content": "我发烧了。"},
        {"role": "assistant", "content": "多少度？"},
        {"role": "user", "content": Q},
    ]
    assert dm.train_dataset[0]["chosen_ids"].tolist() == _ids(demo_tok, prompt, C)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_ranked_list_expands_to_every_ordered_pair(n, demo_tok, write_jsonl, make_pref_dm):
    responses = [f"回答{i}：" + "好" * (i + 1) for i in range(n)]
    ranks = list(range(n, 0, -1))  # the last response is the best
    dm = make_pref_dm([write_jsonl([{"prompt": Q, "responses": responses, "ranks": ranks}])])
    assert dm.stats["train_pairs"] == len(dm.train_dataset) == n * (n - 1) // 2
    for ex in dm.train_dataset:  # the chosen side is always the better-ranked one
        chosen = demo_tok.decode(ex["chosen_ids"][-ex["chosen_response_len"] :])
        rejected = demo_tok.decode(ex["rejected_ids"][-ex["rejected_response_len"] :])
        eos = demo_tok.eos_token
        better, worse = chosen.removesuffix(eos), rejected.removesuffix(eos)
        assert ranks[responses.index(better)] < ranks[responses.index(worse)]


def test_ranked_ties_give_no_pair(write_jsonl, make_pref_dm):
    rec = {"prompt": Q, "responses": ["甲", "乙", "丙"], "ranks": [1, 1, 2]}
    assert make_pref_dm([write_jsonl([rec])]).stats["train_pairs"] == 2


GOOD = SHAPES["prompt string"]
BAD = {
    "missing chosen": ({"prompt": Q, "rejected": R}, "chosen"),
    "missing response_rejected": ({"question": Q, "response_chosen": C}, "response_rejected"),
    "identical": ({"prompt": Q, "chosen": C, "rejected": C + " "}, "rejected"),
    "empty chosen": ({"prompt": Q, "chosen": "  ", "rejected": R}, "chosen"),
    "empty prompt": ({"prompt": "", "chosen": C, "rejected": R}, "prompt"),
    "not text": ({"prompt": Q, "chosen": 3, "rejected": R}, "chosen"),
    "prompt ends with the assistant": (
        {
            "conversations": [{"from": "human", "value": Q}, {"from": "gpt", "value": C}],
            "chosen": C,
            "rejected": R,
        },
        "conversations[1]",
    ),
    "bad prompt turn": (
        {"prompt": [{"role": "user", "content": ""}], "chosen": C, "rejected": R},
        "prompt[0].content",
    ),
    "ranks mismatch": ({"prompt": Q, "responses": [C, R], "ranks": [1]}, "ranks"),
    "unknown shape": ({"text": Q}, "prompt"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_pair_named_by_file_line_field(case, write_jsonl, make_pref_dm):
    record, field = BAD[case]
    path = write_jsonl([GOOD, GOOD, record])
    with pytest.raises(DataError) as e:
        make_pref_dm([path])
    assert e.value.source == path and e.value.where == "line 3" and e.value.field == field
    assert f"line 3: field '{field}'" in str(e.value)


def test_skip_counts_bad_pairs(write_jsonl, make_pref_dm):
    records = [GOOD, BAD["identical"][0], GOOD, BAD["missing chosen"][0], BAD["empty chosen"][0]]
    dm = make_pref_dm([write_jsonl(records)], on_bad_record="skip")
    assert dm.stats["train_skipped"] == 3 and dm.stats["train_records"] == 2
    assert len(dm.train_dataset) == 2


def test_truncation_cuts_the_prompt_from_the_left(demo_tok, write_jsonl, make_pref_dm):
    long_q = "我最近总是头痛，" * 30 + Q
    full_c = _ids(demo_tok, [{"role": "user", "content": long_q}], C)
    full_r = _ids(demo_tok, [{"role": "user", "content": long_q}], R)
    max_length = 40
    dm = make_pref_dm(
        [write_jsonl([{"prompt": long_q, "chosen": C, "rejected": R}])], max_length=max_length
    )
    assert dm.stats["train_truncated"] == 1 and dm.stats["train_dropped"] == 0
    ex = dm.train_dataset[0]
    cut = max(len(full_c), len(full_r)) - max_length
    assert ex["chosen_ids"].tolist() == full_c[cut:]  # same leading cut on both sides
    assert ex["rejected_ids"].tolist() == full_r[cut:]
    assert max(len(ex["chosen_ids"]), len(ex["rejected_ids"])) == max_length


def test_pair_dropped_when_the_response_alone_is_too_long(write_jsonl, make_pref_dm):
    long_c = "多喝水，" * 40
    dm = make_pref_dm(
        [write_jsonl([GOOD, {"prompt": Q, "chosen": long_c, "rejected": R}])],
        max_length=32,
        max_dropped_fraction=0.5,  # 1 of 2 accepted; the default 0.05 refuses it
    )
    assert dm.stats["train_dropped"] == 1 and dm.stats["train_truncated"] == 0
    assert len(dm.train_dataset) == 1


def test_all_pairs_dropped_is_a_data_error(write_jsonl, make_pref_dm):
    path = write_jsonl([{"prompt": Q, "chosen": "多喝水，" * 40, "rejected": R}])
    with pytest.raises(DataError, match="max_length=16"):
        make_pref_dm([path], max_length=16)


def test_collate_chosen_rows_then_rejected_from_lengths(eos_pad_tok, write_jsonl, make_pref_dm):
    recs = [
        GOOD,
        {
            "prompt": "发烧怎么办？",
            "chosen": "多喝水，监测体温，超过三天请就医。",
            "rejected": "不用管",
        },
    ]
    dm = make_pref_dm([write_jsonl(recs)], tokenizer=eos_pad_tok)
    items = [dm.train_dataset[0], dm.train_dataset[1]]
    batch = dm.collate(items)
    rows = [it["chosen_ids"] for it in items] + [it["rejected_ids"] for it in items]
    assert batch["n_pairs"] == 2 and batch["input_ids"].shape == (4, max(len(r) for r in rows))
    for i, row in enumerate(rows):
        n = len(row)
        assert torch.equal(batch["input_ids"][i, :n], row)
        # pad == EOS: the real EOS stays attended, the padding does not
        assert batch["attention_mask"][i].tolist() == [1] * n + [0] * (
            batch["input_ids"].shape[1] - n
        )
        assert (batch["input_ids"][i, n:] == eos_pad_tok.eos_token_id).all()
    assert batch["response_lengths"].tolist() == [
        int(it[k]) for k in ("chosen_response_len", "rejected_response_len") for it in items
    ]


def test_demo_corpus_loads(make_pref_dm):
    dm = make_pref_dm(None)
    assert dm.stats["train_pairs"] == 250 and dm.stats["val_pairs"] == 44
    assert dm.stats["train_dropped"] == 0


def test_template_knob_renders_with_that_template(demo_tok, write_jsonl, make_pref_dm):
    dm = make_pref_dm([write_jsonl([GOOD])], template="ziya")
    text = demo_tok.decode(dm.train_dataset[0]["chosen_ids"])
    assert text == f"<human>:{Q}\n<bot>:{C}{demo_tok.eos_token}"


def test_unknown_template_is_a_config_error(make_pref_dm):
    from chimed_lit.io.errors import ConfigError

    with pytest.raises(ConfigError, match="data.template"):
        make_pref_dm(None, template="alpaca", setup=False)
