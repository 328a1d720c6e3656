"""The one override checker, through the real `chimed-lit` command: a stage-prefixed key gets
the message a plain key gets, under the name the user typed, exit 2 and no internal name; eval,
plan, generate and chat report a typo in the same words."""

from __future__ import annotations

import re

import pytest

CHECKED = "Traceback", "stage_overrides"  # never shown to the user


def clean(r) -> None:
    for text in CHECKED:
        assert text not in r.err + r.out, text


def test_stage_prefixed_typo_is_named_as_typed_with_a_suggestion(run_cli, tmp_path):
    r = run_cli("fit", "sft.trainer.max_stepz=3", "stage=rlhf", f"paths.output_dir={tmp_path}")
    assert r.code == 2, r.err
    assert "unknown key 'sft.trainer.max_stepz' (did you mean 'sft.trainer.max_steps'?)" in r.err
    clean(r)
    assert not (tmp_path / "pretrain").exists()


def test_target_stage_prefix_and_plain_typo_read_alike(run_cli):
    prefixed = run_cli("fit", "stage=sft", "sft.optimizer.lrr=1")
    plain = run_cli("fit", "stage=sft", "optimizer.lrr=1")
    assert prefixed.code == plain.code == 2
    assert "unknown key 'sft.optimizer.lrr' (did you mean 'sft.optimizer.lr'?)" in prefixed.err
    assert "unknown key 'optimizer.lrr' (did you mean 'optimizer.lr'?)" in plain.err
    clean(prefixed)


def test_wrong_type_and_bad_option_of_other_stages_all_at_once(run_cli):
    r = run_cli(
        "fit",
        "stage=rlhf",
        "sft.optimizer.lr=fast",
        "reward.data.pack=maybe",
        "pretrain.data=nope",
        "rlhf.strategy=fsdp3",  # run-wide on the target: checked on the target
        "seed=x",
    )
    assert r.code == 2, r.err
    assert "5 configuration errors" in r.err
    assert "sft.optimizer.lr='fast': expected a number" in r.err
    assert "reward.data.pack='maybe': expected true or false" in r.err
    assert "pretrain.data=nope: no such option; data is one of" in r.err
    assert "rlhf.strategy=fsdp3: no such option; strategy is one of" in r.err
    assert "seed='x': expected an integer" in r.err
    clean(r)


def test_stage_keys_are_checked_on_that_stages_own_config(run_cli, tmp_path):
    """`rlhf` has `stage.algorithm`, `sft` has not: the key is looked up where it goes."""
    ok = run_cli("fit", "--cfg", "job", "stage=dpo", "rlhf.stage.algorithm=ppo")
    assert ok.code == 0, ok.err
    assert "algorithm: ppo" in ok.out  # the routed entry reaches the composed config
    bad = run_cli("fit", "stage=rlhf", "sft.stage.algorithm=ppo")
    assert bad.code == 2 and "unknown key 'sft.stage.algorithm'" in bad.err
    clean(bad)


def test_another_stages_group_choice_is_checked_under_the_run_wide_recipe(run_cli):
    r = run_cli(
        "fit",
        "--cfg",
        "job",
        "experiment=chimed_gpt_13b",
        "stage=sft",
        "pretrain.data=cmd_pretrain",
    )
    assert r.code == 0, r.err


def test_adding_or_deleting_another_stages_key_is_refused_clearly(run_cli):
    r = run_cli("fit", "stage=rlhf", "~sft.trainer.max_steps", "sft.trainer.detect_anomaly=true")
    assert r.code == 2
    assert "~sft.trainer.max_steps: a stage prefix sets a key of that stage" in r.err
    assert "sft.trainer.detect_anomaly: a Trainer argument configs/trainer does not list" in r.err
    clean(r)
    ok = run_cli("fit", "--cfg", "job", "stage=sft", "sft.trainer.detect_anomaly=true")
    assert ok.code == 0 and "detect_anomaly: true" in ok.out  # the target takes it


TYPO = re.compile(r"unknown key '(\S+)' \(did you mean '(\S+)'\?\)")


@pytest.mark.parametrize(
    "command, args, typed, meant",
    [
        ("fit", ["seedd=1"], "seedd", "seed"),
        ("plan", ["trainer.devicez=8"], "trainer.devicez", "trainer.devices"),
        ("plan", ["sft.trainer.devicez=8"], "sft.trainer.devicez", "sft.trainer.devices"),
        ("eval", ["task=scale", "eval.limt=3"], "eval.limt", "eval.limit"),
        (
            "generate",
            ["input=x.jsonl", "sampling.temperatur=1"],
            "sampling.temperatur",
            "sampling.temperature",
        ),
        ("chat", ["model.pretrained=x", "sampling.top_pp=1"], "sampling.top_pp", "sampling.top_p"),
    ],
)
def test_every_command_reports_a_typo_in_the_same_words(run_cli, command, args, typed, meant):
    r = run_cli(command, *args)
    assert r.code == 2, r.err
    assert TYPO.findall(r.err) == [(typed, meant)]
    assert "configuration error:" in r.err
    clean(r)


def test_plan_routes_stage_prefixes_for_its_default_target(run_cli):
    """plan defaults to stage=rlhf: `rlhf.` is the target, `sft.` an upstream stage."""
    r = run_cli("plan", "rlhf.data.max_lenght=8", "sft.optimizer.lr=fast")
    assert r.code == 2, r.err
    assert "unknown key 'rlhf.data.max_lenght' (did you mean 'rlhf.data.max_length'?)" in r.err
    assert "sft.optimizer.lr='fast': expected a number" in r.err
    clean(r)


def test_generate_refuses_a_flag_in_words(run_cli):
    r = run_cli("generate", "--cfg", "job")
    assert r.code == 2 and "unknown flag '--cfg'" in r.err
