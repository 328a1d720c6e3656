"""Every GRPO-family algorithm through the real CLI: its paper's preset, its diagnostics, no
critic, no reward stage, and PPO refusing rewards it cannot use."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from tests.grpo.conftest import grpo_args

FAMILY = {
    # algorithm: knobs its preset must set (the config.yaml records them resolved)
    "grpo": {"advantage": "grpo", "aggregation": "seq_mean_token_mean", "kl_coef": 0.04},
    "dr_grpo": {"advantage": "dr_grpo", "aggregation": "seq_mean_token_sum", "max_tokens": 6},
    "dapo": {"clip_high": 0.28, "dynamic_sampling": True, "aggregation": "token_mean"},
    "gspo": {"ratio_level": "sequence", "clip_low": 3.0e-4, "clip_high": 4.0e-4},
    "rloo": {"advantage": "rloo", "kl_coef": 0.0},
    "reinforce_pp": {"advantage": "reinforce_pp", "aggregation": "token_mean"},
}
DIAGNOSTICS = (
    "reward",
    "reward/mcq",
    "reward/format",
    "reward/length",
    "zero_std_fraction",
    "clip_fraction_low",
    "clip_fraction_high",
    "entropy",
    "response_length",
    "response_length_max",
    "truncation_rate",
    "policy_loss",
)


def _rows(out: Path) -> list[dict[str, float]]:
    rows = csv.DictReader((out / "rlhf" / "csv" / "metrics.csv").open())
    return [{k: float(v) for k, v in r.items() if v} for r in rows]


@pytest.mark.parametrize("algorithm", list(FAMILY))
def test_algorithm_runs_with_its_preset_and_logs_diagnostics(
    run_cli, tiny_models, tmp_path, algorithm
):
    out = tmp_path / algorithm
    r = run_cli(
        "fit",
        *grpo_args(tiny_models["lm"], algorithm),
        "trainer.max_steps=3",
        f"paths.output_dir={out}",
    )
    assert r.code == 0, r.err[-3000:]
    module = OmegaConf.load(out / "rlhf" / "config.yaml").stage.module
    assert module._target_ == "chimed_lit.modules.grpo.GRPOModule"
    for key, want in FAMILY[algorithm].items():
        assert module[key] == want, (key, module[key])
    steps = [r for r in _rows(out) if "rlhf/updated" in r]
    assert len(steps) == 3  # one trainer step per rollout batch
    updates = [r for r in steps if r["rlhf/updated"] == 1.0]
    # dynamic sampling (dapo) may only buffer on a step; the others update every step
    assert len(updates) == 3 or (module.dynamic_sampling and len(updates) >= 1), steps
    for key in DIAGNOSTICS:
        assert all(f"rlhf/{key}" in r for r in updates), key
        for r in updates:
            assert math.isfinite(r[f"rlhf/{key}"]), (key, r)
    for r in steps:  # a step without an update logs its update statistics as NaN, not stale
        if r["rlhf/updated"] == 0.0:
            assert math.isnan(r.get("rlhf/policy_loss", math.nan)), r
    assert not (out / "reward").exists()  # no reward stage for verifiable rewards
    ckpt = torch.load(sorted((out / "rlhf" / "checkpoints").glob("*.ckpt"))[-1], weights_only=True)
    prefixes = {k.split(".")[0] for k in ckpt["state_dict"]}
    assert prefixes == {"actor"}, prefixes  # no critic; frozen models are not checkpointed
    assert "grpo" in ckpt  # the dynamic-sampling buffer and degenerate-step counter


def test_component_rewards_are_each_in_range_and_total_is_their_sum(run_cli, tiny_models, tmp_path):
    out = tmp_path / "run"
    r = run_cli(
        "fit", *grpo_args(tiny_models["lm"]), "trainer.max_steps=2", f"paths.output_dir={out}"
    )
    assert r.code == 0, r.err[-3000:]
    for row in (r for r in _rows(out) if "rlhf/reward" in r):
        parts = [row[f"rlhf/reward/{n}"] for n in ("mcq", "format", "length")]
        assert all(0.0 <= p <= 1.0 for p in parts), row
        assert row["rlhf/reward"] == pytest.approx(sum(parts), abs=1e-5)


def test_sample_table_has_each_component_and_the_gold(run_cli, tiny_models, tmp_path):
    import json

    out = tmp_path / "run"
    r = run_cli(
        "fit",
        *grpo_args(tiny_models["lm"]),
        "logger=[csv,wandb]",
        "trainer.max_steps=1",
        f"paths.output_dir={out}",
    )
    assert r.code == 0, r.err[-3000:]
    tables = [t for t in (out / "wandb").rglob("*.table.json") if "samples" in t.name]
    assert tables, list((out / "wandb").rglob("*"))[:20]
    table = json.loads(tables[0].read_text())
    assert table["columns"] == [
        "step",
        "prompt",
        "response",
        "reward",
        "mcq",
        "format",
        "length",
        "gold",
    ]
    assert len(table["data"]) == 4 * 4  # prompts x group size
    gold = json.loads(table["data"][0][-1])
    assert set(gold) == {"answers", "options"} and gold["answers"][0] in gold["options"]


def test_ppo_refuses_a_reward_it_cannot_use(run_cli, tmp_path):
    r = run_cli("fit", "stage=rlhf", "stage.reward=mcq", f"paths.output_dir={tmp_path}")
    assert r.code == 2
    assert "scores with the trained reward model only" in r.out + r.err
    assert not (tmp_path / "pretrain").exists()  # refused before anything ran


def test_bad_knobs_are_refused_together_before_anything_runs(run_cli, tiny_models, tmp_path):
    r = run_cli(
        "fit",
        *grpo_args(tiny_models["lm"]),
        "stage.grpo.group_size=1",
        "stage.grpo.aggregation=token_avg",
        "stage.grpo.advantage=rlo0",
        "stage.grpo.clip_low=0",
        "stage.grpo.clip_high=abc",
        "stage.grpo.update_epochs=0",
        "stage.grpo.sampling.do_sample=false",
        "stage.reward=mcq+formt",
        f"paths.output_dir={tmp_path}",
    )
    assert r.code == 2
    text = r.out + r.err
    for bad in (
        "group_size=1",
        "aggregation=token_avg",
        "advantage=rlo0",
        "clip_low=0:",
        "clip_high=abc",
        "update_epochs=0",
        "do_sample=false",
        "formt",
    ):
        assert bad in text, bad
    assert "Traceback" not in text
    assert not (tmp_path / "rlhf").exists()


def test_a_preset_dict_knob_is_merged_key_by_key(hydra_ctx):
    from hydra import compose

    from chimed_lit.run.registry import stage_of

    cfg = compose(
        "fit",
        ["stage=rlhf", "stage.algorithm=dapo", "stage.grpo.overlong={buffer: 3}"],
    )
    knobs = stage_of(cfg).knobs(cfg)
    assert knobs["overlong"] == {"mode": "soft", "buffer": 3}  # DAPO's mode kept
    default = stage_of(compose("fit", ["stage=rlhf", "stage.algorithm=dapo"]))
    assert default.knobs(compose("fit", ["stage=rlhf", "stage.algorithm=dapo"]))["overlong"] == {
        "mode": "soft",
        "buffer": 12,  # the last quarter of max_new_tokens=48
    }
