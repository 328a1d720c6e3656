"""Which value a stage gets: its YAML < run-wide overrides < its stage_overrides entry (recipe or
`<stage>.key=value`) < the command line's own overrides for the target stage."""

from __future__ import annotations

from chimed_lit.cli.argv import routed_texts
from chimed_lit.run.compose import compose_stage


def test_recipe_stage_values_reach_the_target_and_the_command_line_beats_them(hydra_ctx, tmp_path):
    args = routed_texts(
        ["stage=sft", "experiment=chimed_gpt_13b", "optimizer.lr=0.7", "pretrain.optimizer.lr=0.3"]
    )
    target = compose_stage("sft", args, str(tmp_path), own=True)
    assert target.optimizer.lr == 0.7  # command line over the recipe
    assert list(target.optimizer.betas) == [0.9, 0.98]  # the recipe's SFT value (paper)
    upstream = compose_stage("pretrain", args, str(tmp_path))
    assert upstream.optimizer.lr == 0.3  # `pretrain.` prefix over the recipe


def test_a_stage_prefixed_run_wide_key_beats_the_run_wide_one_for_that_stage_only(
    hydra_ctx, tmp_path
):
    args = routed_texts(["stage=rlhf", "strategy=deepspeed_zero2", "rlhf.strategy=ddp"])
    rlhf = compose_stage("rlhf", args, str(tmp_path), own=True)
    sft = compose_stage("sft", args, str(tmp_path))
    assert rlhf.strategy._target_.endswith("strategies.ddp")
    assert sft.strategy._target_.endswith("deepspeed.deepspeed") and sft.strategy.zero_stage == 2


def test_precision_on_the_command_line_is_the_target_stages_alone(hydra_ctx, tmp_path):
    """Precision is no hardware key: the upstream stage keeps its own (and stays reusable),
    while devices are shared by every stage."""
    args = routed_texts(["stage=sft", "trainer.precision=bf16-mixed", "trainer.devices=2"])
    sft = compose_stage("sft", args, str(tmp_path), own=True)
    pretrain = compose_stage("pretrain", args, str(tmp_path))
    assert sft.trainer.precision == "bf16-mixed"
    assert pretrain.trainer.precision != "bf16-mixed"
    assert pretrain.trainer.devices == 2 and sft.trainer.devices == 2


def test_a_required_path_left_unset_is_a_config_error_before_anything_runs(run_cli, tmp_path):
    r = run_cli(
        "fit", "stage=sft", "data=chimed_sft", f"paths.output_dir={tmp_path}", "logger=none"
    )
    assert r.code == 2
    assert "data.train_files is required for the sft stage" in r.err
    assert "Traceback" not in r.err
    assert not (tmp_path / "pretrain").exists()
