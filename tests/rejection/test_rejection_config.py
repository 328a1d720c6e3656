"""What a rejection-sampling round trains on, and bad settings failing before any model loads."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from chimed_lit.demo import demo_path
from chimed_lit.io.errors import ConfigError
from chimed_lit.run.preflight import preflight
from chimed_lit.run.stage_runner import stage_context
from chimed_lit.stages.rejection_sampling import run_rejection_sampling, sft_round_config


def rlhf_cfg(tmp_path: Path, *overrides: str):
    with initialize_config_module("chimed_lit.configs", version_base="1.3"):
        return compose(
            "fit",
            overrides=[
                "stage=rlhf",
                "stage.algorithm=rejection_sampling",
                f"paths.output_dir={tmp_path}",
                "logger=csv",
                *overrides,
            ],
        )


def round_cfg(tmp_path: Path, *overrides: str):
    cfg = rlhf_cfg(tmp_path, *overrides)
    compose_sft = stage_context(cfg).compose  # what the pipeline hands the stage
    with initialize_config_module("chimed_lit.configs", version_base="1.3"):
        return sft_round_config(
            cfg, compose_sft, tmp_path / "rlhf" / "round2", tmp_path / "kept.jsonl", 2
        )


def test_a_round_is_the_sft_stage_on_the_kept_samples(tmp_path):
    sft = round_cfg(tmp_path, "stage.rejection.sft_steps=7", "seed=5", "model.dtype=bfloat16")
    assert sft.stage.name == "sft" and sft.stage.module._target_.endswith("SFTModule")
    assert list(sft.data.train_files) == [str(tmp_path / "kept.jsonl")]
    assert list(sft.data.val_files) == [demo_path("sft_val.jsonl")]  # the SFT held-out file
    assert sft.trainer.max_steps == 7 and sft.trainer.val_check_interval == 7
    assert sft.paths.output_dir == str(tmp_path / "rlhf" / "round2")  # -> round2/sft/hf
    assert sft.seed == 7 and sft.data.seed == 7  # seed + round: a fresh data order
    assert sft.model.dtype == "bfloat16" and list(sft.logger) == ["csv"]  # run-wide pieces


def test_mixing_adds_the_sft_train_files_and_sft_overrides_apply(tmp_path):
    sft = round_cfg(
        tmp_path, "++stage.rejection.mix_sft_data=true", "+stage_overrides.sft.optimizer.lr=0.0123"
    )
    assert list(sft.data.train_files) == [demo_path("sft.jsonl"), str(tmp_path / "kept.jsonl")]
    assert sft.optimizer.lr == 0.0123


def test_a_group_choice_for_the_sft_stage_picks_that_groups_file_in_the_round(tmp_path):
    """`sft.data=cmd_sft` on the command line: the round's data is the cmd_sft preset (its
    DataModule and fields), not the string 'cmd_sft' in place of the data node."""
    sft = round_cfg(tmp_path, "+stage_overrides.sft.data=cmd_sft")
    assert sft.data._target_.endswith("SFTDataModule")
    assert (sft.data.format, sft.data.hub_subset) == ("alpaca", "finetune")  # cmd_sft's file


@pytest.mark.parametrize(
    "override, message",
    [
        ("stage.rejection.keep=best", "stage.rejection.keep"),
        ("stage.rejection.keep=top_k stage.rejection.top_k=0", "stage.rejection.top_k"),
        ("stage.rejection.samples_per_prompt=0", "samples_per_prompt"),
    ],
)
def test_bad_settings_fail_in_the_preflight(tmp_path, override, message):
    cfg = rlhf_cfg(tmp_path, *override.split())
    with pytest.raises(ConfigError, match=message):
        preflight([("rlhf", cfg)])


def test_without_policy_and_reward_model_it_says_what_to_set(tmp_path):
    cfg = rlhf_cfg(tmp_path)
    with pytest.raises(ConfigError, match="stage.policy=DIR and stage.reward_model=DIR"):
        run_rejection_sampling(cfg, stage_context(cfg, upstream={}))
    assert not (tmp_path / "rlhf").exists()  # stopped before writing anything
