"""Truncation keeps whole turns from the start; an example with nothing left to learn is dropped
and counted, and too many dropped fail setup; mixing files by weight."""

from __future__ import annotations

from collections import Counter

import pytest

from chimed_lit.chat.render import render_tokens
from chimed_lit.data.sft import mix_by_weight
from chimed_lit.io.errors import ConfigError, DataError

EOS = "</s>"
THREE = [
    {"role": "user", "content": "我头痛。"},
    {"role": "assistant", "content": "痛了多久？"},
    {"role": "user", "content": "两天。"},
    {"role": "assistant", "content": "发热吗？"},
    {"role": "user", "content": "不发热。"},
    {"role": "assistant", "content": "先休息观察。"},
]


def _short(n: int) -> list[dict]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"问题{i}"},
                {"role": "assistant", "content": f"回答{i}"},
            ]
        }
        for i in range(n)
    ]


def test_later_turns_that_do_not_fit_are_dropped_whole(tok, write_records, make_dm, labelled_runs):
    two = render_tokens(tok, THREE[:4]).input_ids
    assert len(render_tokens(tok, THREE).input_ids) > len(two) + 3
    dm = make_dm([write_records([{"messages": THREE}])], max_length=len(two) + 3)
    ex = dm.train_dataset[0]
    assert ex["input_ids"].tolist() == two
    assert labelled_runs(tok, ex["input_ids"], ex["labels"]) == [
        "痛了多久？" + EOS,
        "发热吗？" + EOS,
    ]
    assert dm.stats["train_truncated"] == 1 and dm.stats["train_dropped"] == 0


def test_long_first_answer_is_cut_and_kept(tok, write_records, make_dm, labelled_runs):
    answer = "多喝水，注意休息。" * 20
    msgs = [{"role": "user", "content": "感冒怎么办？"}, {"role": "assistant", "content": answer}]
    dm = make_dm([write_records([{"messages": msgs}])], max_length=24)
    ex = dm.train_dataset[0]
    assert len(ex["input_ids"]) == 24
    (run,) = labelled_runs(tok, ex["input_ids"], ex["labels"])
    assert answer.startswith(run.rstrip("\ufffd")) and len(run) > 3 and EOS not in run
    assert dm.stats["train_truncated"] == 1


def test_all_masked_example_is_dropped_and_counted(tok, write_records, make_dm):
    long_question = {
        "messages": [
            {"role": "user", "content": "我的症状是" + "头痛发热咳嗽" * 30},
            {"role": "assistant", "content": "请就医。"},
        ]
    }
    records = _short(29) + [long_question]
    dm = make_dm([write_records(records)], max_length=32)
    assert dm.stats["train_dropped"] == 1
    assert dm.stats["train_truncated"] == 1
    assert dm.stats["train_examples"] == len(dm.train_dataset) == 29
    assert all((ex["labels"] != -100).any() for ex in dm.train_dataset)


def test_too_many_dropped_is_a_data_error(write_records, make_dm):
    long_question = {
        "messages": [
            {"role": "user", "content": "头痛发热咳嗽" * 30},
            {"role": "assistant", "content": "请就医。"},
        ]
    }
    path = write_records(_short(9) + [long_question])
    with pytest.raises(DataError) as e:
        make_dm([path], max_length=32)
    msg = str(e.value)
    assert "1 of 10" in msg and "data.max_dropped_fraction=0.05" in msg and "data.max_length" in msg
    assert path in msg
    assert make_dm([path], max_length=32, max_dropped_fraction=0.1).stats["train_dropped"] == 1


def test_mix_by_weight_rule():
    a, b = list(range(10)), list(range(100, 130))
    mixed = mix_by_weight([a, b], [1.0, 1.0], seed=3)
    assert len(mixed) == 40
    counts = Counter(x >= 100 for x in mixed)
    assert counts == {False: 20, True: 20}
    assert Counter(x for x in mixed if x < 100) == {i: 2 for i in a}  # a repeated twice
    assert len({x for x in mixed if x >= 100}) == 20  # b subsampled, distinct
    assert mixed == mix_by_weight([a, b], [1.0, 1.0], seed=3)
    assert mixed != mix_by_weight([a, b], [1.0, 1.0], seed=4)
    only_b = mix_by_weight([a, b], [0.0, 1.0])
    assert len(only_b) == 40 and min(only_b) >= 100 and len(set(only_b)) == 30
    with pytest.raises(ConfigError):
        mix_by_weight([a, b], [-1.0, 1.0])


def test_weights_in_the_datamodule(write_records, make_dm, tok):
    small = write_records(_short(4), "small.jsonl")
    big = write_records(
        [
            {
                "messages": [
                    {"role": "user", "content": f"大问题{i}"},
                    {"role": "assistant", "content": f"大回答{i}"},
                ]
            }
            for i in range(12)
        ],
        "big.jsonl",
    )
    dm = make_dm([small, big], weights=[3.0, 1.0])
    assert dm.stats["train_records"] == 16 and dm.stats["train_mixed"] == 16
    texts = [tok.decode(ex["input_ids"]) for ex in dm.train_dataset]
    assert sum("大问题" in t for t in texts) == 4
    with pytest.raises(ConfigError, match="one weight per file"):
        make_dm([small, big], weights=[1.0], setup=False)
