"""Issue 21's evidence on the embedded default: `chimed-lit fit stage=rlhf experiment=grpo_demo`
(pretrain -> sft -> GRPO with the mcq and format rewards, no reward model) raises held-out
accuracy and answer-format rate over the SFT policy's, on questions asked in phrasings, option
orders and facts the RL prompts never used.

Both are measured by the stage's own validation on `demo/mcq_val.jsonl`: before training (the
SFT policy) and after, each a mean over 4 sampled replies per question (240 replies). Measured
on 2026-12-02: format 0.32 -> 0.93, accuracy 0.08 -> 0.22. Accuracy among answers in format
stayed at chance (0.25 -> 0.24): on this 2M-parameter model GRPO teaches answering as asked,
not the facts, and the test claims no more than that."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_grpo_raises_held_out_accuracy_and_format_rate_over_the_sft_policy(run_cli, tmp_path):
    r = run_cli(
        "fit",
        "stage=rlhf",
        "experiment=grpo_demo",
        "logger=csv",
        "trainer.enable_progress_bar=false",
        f"paths.output_dir={tmp_path}",
    )
    assert r.code == 0, r.err[-3000:]
    assert not (tmp_path / "reward").exists()  # verifiable rewards: no reward model trained
    s = json.loads((tmp_path / "rlhf" / "summary.json").read_text())
    before, after = s["initial"], s["final"]
    fmt, acc = "rlhf/val_reward/format", "rlhf/val_reward/mcq"
    assert before[fmt] < 0.6, before  # the SFT policy answers in format only part of the time
    assert after[fmt] >= before[fmt] + 0.3, (before, after)
    assert after[acc] >= before[acc] + 0.07, (before, after)
    assert s["global_step"] == 40
