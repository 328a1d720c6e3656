"""One round of rejection-sampling RLHF through `chimed-lit fit stage=rlhf`, on the tiny regime.

The upstream stages (pretrain -> sft -> reward) are built once with the CLI; the rlhf run
reuses them and samples 4 replies to each of 64 training prompts, keeps the global top quarter
and fine-tunes on them. The global rule is used because with the tiny policy a quarter of the
prompts get only evasive or dismissive replies: `top_k` keeps one of those for each such prompt,
and as they are one repeated sentence they become the greedy decoder's mode again.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from chimed_lit.demo import demo_path

UPSTREAM = [
    "logger=csv",
    "pretrain.trainer.max_steps=60",
    "sft.trainer.max_steps=100",
    "reward.trainer.max_steps=40",
]
PROMPTS, SAMPLES, STEPS = 64, 4, 40


def cli(*args: str) -> int:
    from hydra.core.global_hydra import GlobalHydra

    from chimed_lit.cli.main import main

    saved = sys.argv
    try:
        return main(list(args))
    finally:
        sys.argv = saved
        GlobalHydra.instance().clear()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The upstream stages, then one rejection-sampling round reusing them."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("rejection")
    assert cli("fit", "stage=reward", f"paths.output_dir={out}", *UPSTREAM) == 0
    assert (
        cli(
            "fit",
            "stage=rlhf",
            "stage.algorithm=rejection_sampling",
            f"paths.output_dir={out}",
            *UPSTREAM,
            f"data.max_records={PROMPTS}",
            f"stage.rejection.samples_per_prompt={SAMPLES}",
            "stage.rejection.keep=top_fraction",
            "stage.rejection.top_fraction=0.25",
            f"stage.rejection.sft_steps={STEPS}",
        )
        == 0
    )
    return out


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_one_round_raises_the_held_out_reward(run):
    s = json.loads((run / "rlhf" / "summary.json").read_text())
    initial, final = s["initial"]["rlhf/val_reward"], s["final"]["rlhf/val_reward"]
    # rewards of this reward model span about -4.5 .. 4.5 (std ~4): a clear rise, not noise
    assert final > initial + 3.0, s
    assert len(jsonl(run / "rlhf" / "val_final.jsonl")) == s["data"]["val_prompts"] == 44
    (round0,) = s["rounds"]
    assert round0["kept_mean_reward"] > round0["mean_reward"]
    assert s["stage"] == "rlhf" and s["hf_dir"] == str(run / "rlhf" / "hf")


def test_kept_samples_are_the_top_quarter_of_all_scored(run):
    scored = jsonl(run / "rlhf" / "round0" / "scored.jsonl")
    kept = jsonl(run / "rlhf" / "round0" / "samples.jsonl")
    assert len(scored) == PROMPTS * SAMPLES
    flagged = [x for x in scored if x["kept"]]
    assert len(kept) == len(flagged) and 0.9 * PROMPTS <= len(kept) <= PROMPTS
    assert all(x["finished"] and x["response"] for x in flagged)
    twins = {(x["prompt_index"], x["response"]) for x in flagged}  # a repeat is kept once
    left_out = [
        x["reward"]
        for x in scored
        if x["finished"] and x["response"] and (x["prompt_index"], x["response"]) not in twins
    ]
    assert min(x["reward"] for x in kept) >= max(left_out)
    for record in kept:  # SFT-ready: the prompt conversation, then the kept reply
        assert record["messages"][-1]["role"] == "assistant" and record["messages"][-1]["content"]
        assert record["messages"][-2]["role"] == "user"


def test_the_round_fine_tunes_the_sft_policy_on_the_kept_samples(run):
    sft_dir = run / "rlhf" / "round0" / "sft"
    cfg = OmegaConf.load(sft_dir / "config.yaml")
    assert list(cfg.data.train_files) == [str(run / "rlhf" / "round0" / "samples.jsonl")]
    assert list(cfg.data.val_files) == [demo_path("sft_val.jsonl")]
    summary = json.loads((sft_dir / "summary.json").read_text())
    assert summary["global_step"] == STEPS
    # it started from the sft stage's policy: same held-out loss before its first step
    before = json.loads((sft_dir / "initial_metrics.json").read_text())["sft/val_loss"]
    sft_final = json.loads((run / "sft" / "summary.json").read_text())["final"]["sft/val_loss"]
    assert before == pytest.approx(sft_final, rel=1e-4)


def test_the_final_policy_is_exported_and_upstream_was_reused(run):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = run / "rlhf" / "hf"
    exported = load_file(hf / "model.safetensors")
    trained = load_file(run / "rlhf" / "round0" / "sft" / "hf" / "model.safetensors")
    assert exported.keys() == trained.keys()
    assert all(torch.equal(exported[k], trained[k]) for k in exported)
    assert AutoModelForCausalLM.from_pretrained(hf).config.vocab_size >= len(
        AutoTokenizer.from_pretrained(hf)
    )
    log = (run / "fit.log").read_text(encoding="utf-8")
    assert all(f"reusing {stage}" in log for stage in ("pretrain", "sft", "reward")), log[-2000:]
    assert json.loads((run / "rlhf" / "stage.json").read_text())["complete"]
