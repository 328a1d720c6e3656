"""The RL stage's data presets read MCQ files when pointed at them: `data.train_files=[cmexam.csv]`
with the stage's default preset or with `data=mcq_demo`."""

from __future__ import annotations

import json

import pytest
from hydra import compose
from hydra.utils import instantiate

from chimed_lit.demo import demo_path
from tests.conftest import shared


@pytest.mark.parametrize("preset", [None, "mcq_demo"])
def test_rlhf_reads_a_cmexam_csv_given_as_train_files(hydra_ctx, tmp_path, preset):
    path = shared("mcq/cmexam_val.csv")
    overrides = ["stage=rlhf", f"paths.output_dir={tmp_path}", f"data.train_files=[{path}]"]
    cfg = compose("fit", overrides=overrides + ([f"data={preset}"] if preset else []))
    dm = instantiate(cfg.data)
    train, val = dm.split_records()
    assert len(train) + len(val) == 600 and len(val) == 60  # data.val_fraction held out
    assert {r["task"] for r in train + val} == {"mcq"}
    assert all(json.loads(r["gold"])["answers"] for r in train)


def test_mcq_demo_defaults_to_the_shipped_task_and_its_held_out_file(hydra_ctx, tmp_path):
    cfg = compose("fit", overrides=["stage=rlhf", "data=mcq_demo", f"paths.output_dir={tmp_path}"])
    assert cfg.data.task == "auto" and cfg.data.task_format is None
    dm = instantiate(cfg.data)
    assert dm.train_files == [demo_path("mcq_train.jsonl")]
    assert dm.val_files == [demo_path("mcq_val.jsonl")]
    train, val = dm.split_records()
    assert (len(train), len(val)) == (384, 60)
    assert {r["task"] for r in train + val} == {"mcq"}
