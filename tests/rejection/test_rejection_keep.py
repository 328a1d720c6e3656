"""The keep rules and the renderings rejection sampling relies on, as pure functions."""

from __future__ import annotations

import json

import pytest

from chimed_lit.data.conversation import to_messages
from chimed_lit.io.errors import ConfigError
from chimed_lit.stages.rejection_sampling import (
    Scored,
    keep_top_fraction,
    keep_top_k,
    rank,
    reward_ids,
    select,
    sft_record,
)

Q = [[{"role": "user", "content": f"问题{i}？"}] for i in range(3)]


def s(prompt: int, text: str, reward: float, finished: bool = True) -> Scored:
    return Scored(prompt, Q[prompt], text, finished, reward)


SAMPLES = [
    s(0, "a0", 1.0),
    s(0, "b0", 3.0),
    s(0, "c0", 9.0, finished=False),
    s(0, "d0", 2.0),
    s(1, "a1", -1.0),
    s(1, "b1", -2.0),
    s(1, "c1", 5.0),
    s(1, "d1", 4.0),
    s(2, "a2", 7.0, finished=False),
    s(2, "b2", 8.0, finished=False),
]


def texts(samples: list[Scored]) -> list[str]:
    return [x.response for x in samples]


def test_top_k_keeps_the_best_finished_replies_of_each_prompt():
    assert texts(keep_top_k(SAMPLES, 1)) == ["b0", "c1"]
    assert texts(keep_top_k(SAMPLES, 2)) == ["b0", "d0", "c1", "d1"]


def test_a_reply_without_eos_is_ranked_last_and_never_kept():
    ranked = rank([x for x in SAMPLES if x.prompt_index == 0])
    assert texts(ranked) == ["b0", "d0", "a0", "c0"]  # c0 has the top reward but no EOS
    # prompt 2 has only unfinished replies: it contributes nothing, even with k = 4
    assert not [x for x in keep_top_k(SAMPLES, 4) if x.prompt_index == 2]


def test_top_fraction_is_global_across_prompts():
    # ceil(0.3 * 10) = 3 best of the ranking: c1, d1 (prompt 1), b0 (prompt 0)
    assert texts(keep_top_fraction(SAMPLES, 0.3)) == ["c1", "d1", "b0"]
    # everything: the 3 unfinished replies rank last and are dropped
    assert len(keep_top_fraction(SAMPLES, 1.0)) == 7


def test_repeated_replies_are_kept_once():
    twins = [s(0, "same", 5.0), s(0, "same", 5.0), s(0, "other", 1.0)]
    assert texts(keep_top_k(twins, 2)) == ["same", "other"]
    assert texts(keep_top_fraction(twins, 1.0)) == ["same", "other"]


def test_empty_replies_are_never_kept():
    assert keep_top_k([s(0, "", 10.0), s(0, "  ", 9.0)], 1) == []


@pytest.mark.parametrize(
    "rule, k, fraction",
    [("best", 1, 0.5), ("top_k", 0, 0.5), ("top_fraction", 1, 0.0), ("top_fraction", 1, 1.5)],
)
def test_bad_keep_knobs_fail_clearly(rule, k, fraction):
    with pytest.raises(ConfigError, match="stage.rejection"):
        select(SAMPLES, rule, k, fraction)


def test_a_kept_sample_is_an_sft_record():
    record = json.loads(json.dumps(sft_record(s(1, "多喝水。", 2.5)), ensure_ascii=False))
    assert record["reward"] == 2.5
    converted = to_messages(record)
    assert converted.format == "messages"
    assert converted.messages == [*Q[1], {"role": "assistant", "content": "多喝水。"}]


def test_reward_model_reads_the_preference_rendering(demo_tok):
    """A finished reply is scored on exactly the ids the reward model was trained on."""
    from chimed_lit.data.preference import PreferenceDataModule

    dm = PreferenceDataModule(tokenizer=demo_tok, train_files=["unused.jsonl"], max_length=512)
    pair = {"prompt": Q[0], "chosen": "建议到医院就诊。", "rejected": "没事。"}
    trained = dm.tokenize(pair)["chosen_ids"]
    finished = reward_ids(demo_tok, Q[0], "建议到医院就诊。", True, "chimed")
    assert finished == trained and finished[-1] == demo_tok.eos_token_id
    unfinished = reward_ids(demo_tok, Q[0], "建议到医院就诊。", False, "chimed")
    assert unfinished == trained[:-1]


@pytest.mark.parametrize("val_files", [None, "prompts_val.jsonl"])
def test_prompts_are_split_as_the_datamodule_splits_them(demo_tok, tmp_path, val_files):
    """`load_prompts` repeats `setup`'s split: held-out prompts stay held out."""
    from chimed_lit.data.prompts import PromptDataModule
    from chimed_lit.demo import demo_path
    from chimed_lit.stages.rejection_sampling import load_prompts

    dm = PromptDataModule(
        tokenizer=demo_tok,
        train_files=[demo_path("prompts.jsonl")],
        val_files=[demo_path(val_files)] if val_files else None,
        val_fraction=0.1,
        seed=7,
        cache_dir=str(tmp_path),
    )
    train, val = load_prompts(dm)
    dm.setup("fit")
    assert val.ids == [list(map(int, x)) for x in dm.val_dataset["prompt_ids"]]
    assert train.ids == [list(map(int, x)) for x in dm.train_dataset["prompt_ids"]]
    assert [m[-1]["content"] for m in val.messages] == list(dm.val_dataset["prompt_text"])
    assert len(train.ids) + len(val.ids) == (294 if val_files else 250)
