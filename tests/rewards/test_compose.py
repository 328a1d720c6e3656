"""`compose`: the spec shapes, option checks, weighted totals and clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from chimed_lit.io.errors import ConfigError
from chimed_lit.rewards.compose import KNOWN, build_rewards, needs_reward_model, parse_spec
from tests.rewards import records


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("mcq", {"mcq": 1.0}),
        ("mcq+format", {"mcq": 1.0, "format": 1.0}),
        (" mcq + format ", {"mcq": 1.0, "format": 1.0}),
        (["ner", "length"], {"ner": 1.0, "length": 1.0}),
        (
            {"mcq": 1, "format": 0.2, "repetition": 0},
            {"mcq": 1.0, "format": 0.2, "repetition": 0.0},
        ),
    ],
)
def test_parse_spec_shapes(spec, expected) -> None:
    assert parse_spec(spec) == expected


def test_parse_spec_from_hydra_containers() -> None:
    from omegaconf import OmegaConf

    assert parse_spec(OmegaConf.create({"mcq": 1.0, "judge": 0.5})) == {"mcq": 1.0, "judge": 0.5}
    assert parse_spec(OmegaConf.create(["mcq", "format"])) == {"mcq": 1.0, "format": 1.0}


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("mqc", "unknown reward 'mqc'; known rewards: " + ", ".join(KNOWN)),
        ("mcq+", "unknown reward ''"),
        ([], "is empty"),
        ("mcq+mcq", "mcq is named twice"),
        ({"mcq": "high"}, "a weight must be a number"),
        ({"mcq": True}, "a weight must be a number"),
        ({"mcq": float("nan")}, "must be finite"),
        (3, "name a reward"),
    ],
)
def test_parse_spec_errors(spec, says: str) -> None:
    with pytest.raises(ConfigError, match=None) as err:
        parse_spec(spec)
    assert says in str(err.value)
    assert "stage.reward" in str(err.value)


def test_needs_reward_model() -> None:
    assert needs_reward_model("mcq+reward_model")
    assert needs_reward_model({"reward_model": 1.0})
    assert not needs_reward_model("mcq+format+judge")


def test_spec_parsing_imports_no_torch() -> None:
    """The run layer decides whether the reward stage runs without loading torch."""
    code = (
        "import sys\n"
        "from chimed_lit.rewards.compose import needs_reward_model, parse_spec\n"
        "assert parse_spec('mcq+format') == {'mcq': 1.0, 'format': 1.0}\n"
        "assert needs_reward_model(['reward_model'])\n"
        "print(sorted(m for m in ('torch', 'lightning', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_weighted_total_and_components() -> None:
    rewards = build_rewards(
        {"mcq": 1.0, "format": 0.5, "length": 0.0}, {"length": {"max_chars": 4}}
    )
    assert rewards.names == ["mcq", "format", "length"]
    recs = [records.mcq("C"), records.mcq("C"), records.mcq("C"), records.mcq("C")]
    responses = ["C", "B", "ABCDE", "答案：C，因为出血量决定表现"]
    total, parts = rewards(recs, responses)
    assert total.dtype == torch.float32 and total.shape == (4,)
    assert parts["mcq"].tolist() == [1.0, 0.0, 0.0, 1.0]
    assert parts["format"].tolist() == [1.0, 1.0, 0.0, 1.0]
    long = len(responses[3])
    assert parts["length"].tolist() == pytest.approx([1.0, 1.0, 0.75, max(0.0, 1 - (long - 4) / 4)])
    # length has weight 0: scored and reported, not in the total
    assert total.tolist() == pytest.approx([1.5, 0.5, 0.0, 1.5])


def test_mixed_tasks_with_rewards_for_every_task() -> None:
    rewards = build_rewards("format+repetition")
    recs = [records.mcq("C"), records.ner([("头痛", "sym")]), records.free()]
    total, parts = rewards(recs, ["C", "头痛：临床表现", "少盐少油。"])
    assert parts["format"].tolist() == [1.0, 1.0, 1.0]
    assert total.tolist() == [2.0, 2.0, 2.0]


def test_reward_that_cannot_score_a_task_is_a_config_error() -> None:
    rewards = build_rewards("mcq")
    with pytest.raises(
        ConfigError, match="stage.reward includes mcq, which cannot score a free prompt"
    ):
        rewards([records.free()], ["C"])
    with pytest.raises(ConfigError, match="includes ner, which cannot score a mcq prompt"):
        build_rewards("ner")([records.mcq("C")], ["C"])


def test_options_are_checked_when_built() -> None:
    assert build_rewards("mcq", {"mcq": {"partial_credit": True}})([records.mcq("AC")], ["A"])[
        0
    ].tolist() == [0.5]
    with pytest.raises(
        ConfigError,
        match=r"reward_options.mcq.partial: mcq has no such option \(it takes: partial_credit\)",
    ):
        build_rewards("mcq", {"mcq": {"partial": True}})
    with pytest.raises(ConfigError, match="reward_options.length.max_chars=5 must be >= min_chars"):
        build_rewards("length", {"length": {"min_chars": 10, "max_chars": 5}})
    with pytest.raises(ConfigError, match="unknown reward 'lenght'"):
        build_rewards("length", {"lenght": {"max_chars": 5}})
    build_rewards("mcq", {"length": {"max_chars": 5}})  # a known reward not in the spec: ignored


def test_batch_rewards_say_what_they_miss() -> None:
    with pytest.raises(ConfigError, match="needs a trained reward model"):
        build_rewards("mcq+reward_model")
    with pytest.raises(ConfigError, match="judge.url"):
        build_rewards("judge")
    with pytest.raises(ConfigError, match="judge has no such option"):
        build_rewards(
            "judge", {"judge": {"url": "http://127.0.0.1:9", "model": "m", "temprature": 0}}
        )


def test_length_mismatch() -> None:
    with pytest.raises(ValueError, match="2 records but 1 responses"):
        build_rewards("format")([records.free(), records.free()], ["x"])
