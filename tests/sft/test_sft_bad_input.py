"""Bad records stop setup with file, line or item, and field; `on_bad_record=skip` counts them."""

from __future__ import annotations

import pytest

from chimed_lit.io.errors import ConfigError, DataError

GOOD = {
    "messages": [{"role": "user", "content": "头痛？"}, {"role": "assistant", "content": "休息。"}]
}
BAD = {
    "missing field": (
        {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt"}]},
        "conversations[1].value",
    ),
    "wrong type": ({"instruction": "q", "input": "", "output": 42}, "output"),
    "empty content": (
        {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "a"}]},
        "messages[0].content",
    ),
    "no assistant turn": ({"messages": [{"role": "user", "content": "q"}]}, "messages"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_record_named(case, write_records, make_dm):
    record, field = BAD[case]
    path = write_records([GOOD, GOOD, record])
    with pytest.raises(DataError) as e:
        make_dm([path])
    assert (e.value.source, e.value.where, e.value.field) == (path, "line 3", field)
    assert f"{path}, line 3: field '{field}'" in str(e.value)


def test_bad_item_of_a_json_array(write_records, make_dm):
    path = write_records(
        [["病人：发烧", "医生：多少度？"], ["病人：咳嗽", "护士：请稍等"]], "d.json"
    )
    with pytest.raises(DataError) as e:
        make_dm([path])
    assert (e.value.where, e.value.field) == ("item 1", "utterances[1]")


def test_skip_counts_bad_records(write_records, make_dm):
    path = write_records([GOOD, *(r for r, _ in BAD.values()), GOOD, GOOD])
    dm = make_dm([path], on_bad_record="skip")
    assert dm.stats["train_records"] == 3 and dm.stats["train_skipped"] == len(BAD)
    assert len(dm.train_dataset) == 3


def test_format_forced_against_the_data(write_records, make_dm):
    with pytest.raises(DataError) as e:
        make_dm([write_records([GOOD])], format="sharegpt")
    assert e.value.field == "conversations"


def test_bad_knobs_are_config_errors(make_dm, write_records):
    with pytest.raises(ConfigError) as e:
        make_dm(
            [write_records([GOOD])],
            setup=False,
            format="csv",
            template="vicuna",
            train_on="everything",
        )
    assert len(e.value.problems) == 3
