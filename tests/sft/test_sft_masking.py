"""Loss masks for every input format, checked token by token on multi-turn examples: targets
are exactly each assistant answer and its EOS; everything else (system, user, `[human]:`,
`[bot]:`) is -100. Plus the pad == EOS guard."""

from __future__ import annotations

import copy

import pytest
import torch

EOS = "</s>"

# (format, file name, records, the assistant answers of each record in order)
CASES = {
    "alpaca": (
        "data.jsonl",
        [
            {
                "instruction": "头痛怎么办？",
                "input": "已经三天了",
                "output": "先测量血压。",
                "history": [["你好", "您好，请讲。"], ["我头痛", "痛了多久？"]],
            }
        ],
        [["您好，请讲。", "痛了多久？", "先测量血压。"]],
    ),
    "sharegpt": (
        "data.jsonl",
        [
            {
                "conversations": [
                    {"from": "system", "value": "你是医生。"},
                    {"from": "human", "value": "咳嗽怎么办？"},
                    {"from": "gpt", "value": "多喝水。"},
                    {"from": "human", "value": "还要注意什么？"},
                    {"from": "gpt", "value": "注意休息，避免受凉。"},
                ]
            }
        ],
        [["多喝水。", "注意休息，避免受凉。"]],
    ),
    "messages": (
        "data.jsonl",
        [
            {
                "messages": [
                    {"role": "system", "content": "你是一名儿科医生。"},
                    {"role": "user", "content": "孩子发烧。"},
                    {"role": "assistant", "content": "多少度？"},
                    {"role": "user", "content": "三十九度。"},
                    {"role": "assistant", "content": "请及时就医。"},
                ]
            }
        ],
        [["多少度？", "请及时就医。"]],
    ),
    "dialogue": (
        "data.json",
        [
            [
                "病人：我发烧了。",
                "病人：还咳嗽。",
                "医生：多久了？",
                "病人：两天。",
                "医生：建议检查血常规。",
                "病人：好的谢谢",
            ]
        ],
        [["多久了？", "建议检查血常规。"]],
    ),
    "history": (
        "data.json",
        [
            {
                "id": "j1",
                "cate1": "内科",
                "cate2": "内科",
                "instruction": "谢谢医生。",
                "input": "",
                "output": " 不客气，祝您早日康复。",
                "history": [[" 我胃痛。", "胃痛多久了？"]],
            },
            {"instruct": " 发烧是恶魔附身吗？", "output": " 不是，发烧是常见症状。"},
        ],
        [["胃痛多久了？", "不客气，祝您早日康复。"], ["不是，发烧是常见症状。"]],
    ),
    "qa_csv": (
        "data.csv",
        [
            {
                "department": "心血管科",
                "title": "高血压能吃党参吗？",
                "ask": "我有高血压，能吃党参吗？",
                "answer": "可以适量服用。",
            },
            {"department": "内科", "title": "胃痛吃什么药？", "ask": "", "answer": "请先就诊。"},
        ],
        [["可以适量服用。"], ["请先就诊。"]],
    ),
}


@pytest.mark.parametrize("fmt", list(CASES))
@pytest.mark.parametrize("declared", [True, False], ids=["declared", "auto"])
def test_targets_are_answers_and_eos(fmt, declared, write_records, make_dm, tok, labelled_runs):
    name, records, answers = CASES[fmt]
    dm = make_dm([write_records(records, name)], format=fmt if declared else "auto")
    assert len(dm.train_dataset) == len(answers)
    for example, expected in zip(dm.train_dataset, answers, strict=True):
        runs = labelled_runs(tok, example["input_ids"], example["labels"])
        assert runs == [a + EOS for a in expected]
        text = tok.decode(example["input_ids"])
        assert text.startswith(("[human]:", "你是")) and text.endswith(EOS)
        assert text.count("[bot]:") == len(expected)


def test_last_assistant_only(write_records, make_dm, tok, labelled_runs):
    name, records, answers = CASES["sharegpt"]
    dm = make_dm([write_records(records, name)], train_on="last_assistant")
    ex = dm.train_dataset[0]
    assert labelled_runs(tok, ex["input_ids"], ex["labels"]) == [answers[0][-1] + EOS]


def test_dialogue_trailing_patient_counted(write_records, make_dm):
    name, records, _ = CASES["dialogue"]
    dm = make_dm([write_records(records, name)])
    assert dm.stats["train_trailing_user_dropped"] == 1


def test_pad_equal_to_eos_keeps_the_final_eos(write_records, make_dm, tok):
    """The authors padded with </s> and masked pads by id, losing the real EOS: never again."""
    same = copy.deepcopy(tok)
    same.pad_token = same.eos_token
    assert same.pad_token_id == same.eos_token_id
    path = write_records(
        [
            {
                "messages": [
                    {"role": "user", "content": "头痛？"},
                    {"role": "assistant", "content": "休息。"},
                ]
            },
            {
                "messages": [
                    {"role": "user", "content": "发烧三天了怎么办？"},
                    {"role": "assistant", "content": "请尽快到发热门诊就诊。"},
                ]
            },
        ]
    )
    dm = make_dm([path], tokenizer=same)
    batch = dm.collate([dm.train_dataset[0], dm.train_dataset[1]])
    lengths = [len(dm.train_dataset[i]["input_ids"]) for i in range(2)]
    assert lengths[0] < lengths[1]
    eos = same.eos_token_id
    assert batch["attention_mask"].sum(1).tolist() == lengths
    for row, n in enumerate(lengths):
        assert batch["input_ids"][row, n - 1] == eos
        assert batch["labels"][row, n - 1] == eos  # the real EOS is a target ...
        assert batch["attention_mask"][row, n - 1] == 1  # ... and attended to
        assert (batch["labels"][row, n:] == -100).all()  # pads (also </s>) are not
    assert (batch["input_ids"][0, lengths[0] :] == eos).all()
    assert batch["input_ids"].dtype == torch.long
