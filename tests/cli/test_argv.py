"""The one argv splitter: Hydra flags (with their values) apart from overrides, as Hydra's own
parser reads them, and `<stage>.key=value` routed to the stage it names."""

from __future__ import annotations

import pytest
from hydra._internal.utils import get_args_parser

from chimed_lit.cli.argv import Override, default_stage, route_stage_prefixes, split_argv


def hydra_reads(argv: list[str]):
    """What Hydra's own argparse parser makes of an argv (it exits on one it cannot read)."""
    return get_args_parser().parse_args(argv)


@pytest.mark.parametrize(
    "args, flags, overrides",
    [
        (["--cfg", "job", "seed=1"], ["--cfg", "job"], ["seed=1"]),
        (["seed=1", "-c", "hydra", "--resolve"], ["-c", "hydra", "--resolve"], ["seed=1"]),
        (["--cfg=job", "seed=1"], ["--cfg=job"], ["seed=1"]),
        (["-m", "seed=1,2", "--package", "trainer"], ["-m", "--package", "trainer"], ["seed=1,2"]),
        (["-cn", "fit", "-cd", "/tmp/x", "seed=1"], ["-cn", "fit", "-cd", "/tmp/x"], ["seed=1"]),
        (["--config-name", "fit", "-p", "model"], ["--config-name", "fit", "-p", "model"], []),
        (["--info", "defaults", "seed=1"], ["--info", "defaults"], ["seed=1"]),
        (["-i", "plugins"], ["-i", "plugins"], []),
        (["--multirun", "~trainer.x", "+a=1"], ["--multirun"], ["~trainer.x", "+a=1"]),
        (["--help"], ["--help"], []),
        (["--hydra-help", "seed=2"], ["--hydra-help"], ["seed=2"]),
    ],
)
def test_flags_keep_their_values_and_hydra_reads_the_result_alike(args, flags, overrides):
    line = split_argv(args)
    assert line.flags == flags
    assert line.texts == overrides
    ours, theirs = hydra_reads(line.argv()), hydra_reads(args)
    assert vars(ours) == vars(theirs)  # putting the flags last changes nothing


def test_a_bare_info_flag_works_before_an_override():
    """Hydra's parser alone takes `seed=1` as the value of `--info` and fails."""
    line = split_argv(["--info", "seed=1"])
    assert line.flags == ["--info"] and line.texts == ["seed=1"]
    read = hydra_reads(line.argv())
    assert read.info == "all" and read.overrides == ["seed=1"]
    with pytest.raises(SystemExit):
        hydra_reads(["--info", "seed=1"])


def test_multirun_is_seen_by_either_spelling():
    assert split_argv(["-m", "seed=1,2"]).multirun
    assert split_argv(["seed=1", "--multirun"]).multirun
    assert not split_argv(["--cfg", "job", "seed=1"]).multirun


def test_a_value_flag_does_not_swallow_an_override():
    """`--cfg stage=sft` is the user's mistake; the override stays an override (Hydra then
    says --cfg needs a value) instead of vanishing into the flag."""
    line = split_argv(["--cfg", "stage=sft"])
    assert line.flags == ["--cfg"] and line.texts == ["stage=sft"]
    with pytest.raises(SystemExit):
        hydra_reads(line.argv())


def test_fit_yaml_names_the_default_stage():
    assert default_stage() == "pretrain"


def test_stage_prefixes_route_to_the_target_or_to_stage_overrides():
    routed = route_stage_prefixes(
        [
            "sft.trainer.max_steps=3",  # upstream of rlhf
            "stage=rlhf",
            "rlhf.trainer.max_steps=4",  # the target: a plain override
            "rlhf.strategy=ddp",  # run-wide on the target: kept from the other stages
            "+rlhf.trainer.detect_anomaly=true",
            "seed=1",
            "sftx.a=1",  # not a stage: left alone
        ]
    )
    assert [o.text for o in routed] == [
        "++stage_overrides.sft.trainer.max_steps=3",
        "stage=rlhf",
        "trainer.max_steps=4",
        "++stage_overrides.rlhf.strategy=ddp",
        "+trainer.detect_anomaly=true",
        "seed=1",
        "sftx.a=1",
    ]
    assert [(o.stage, o.upstream) for o in routed] == [
        ("sft", True),
        (None, False),
        ("rlhf", False),
        ("rlhf", True),
        ("rlhf", False),
        (None, False),
        (None, False),
    ]
    assert routed[0].local == "trainer.max_steps=3" and routed[0].typed == "sft.trainer.max_steps=3"
    assert routed[4].local == "+trainer.detect_anomaly=true"


def test_without_stage_the_default_or_the_given_target_decides():
    assert route_stage_prefixes(["pretrain.seed=3"])[0].text == "++stage_overrides.pretrain.seed=3"
    assert route_stage_prefixes(["pretrain.optimizer.lr=1"])[0].text == "optimizer.lr=1"
    plan = route_stage_prefixes(["rlhf.optimizer.lr=1"], target="rlhf")
    assert plan == [Override("rlhf.optimizer.lr=1", "optimizer.lr=1", "rlhf", False)]


def test_fit_splits_with_stage_routing_and_keeps_flags():
    line = split_argv(["--cfg", "job", "stage=sft", "pretrain.seed=5"], stages=True)
    assert line.flags == ["--cfg", "job"]
    assert line.texts == ["stage=sft", "++stage_overrides.pretrain.seed=5"]


def test_the_config_dir_is_the_last_one_given_as_hydra_searches_it():
    assert split_argv(["--config-dir", "a", "stage=sft"]).config_dirs == ["a"]
    assert split_argv(["-cd", "a", "--config-dir=b", "seed=1"]).config_dirs == ["b"]
    assert split_argv(["seed=1"]).config_dirs == []
