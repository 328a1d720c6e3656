"""GRPO with LoRA (the reference is the base with adapters off), and the warning when no group
has any reward spread."""

from __future__ import annotations

from omegaconf import OmegaConf

from tests.grpo.conftest import grpo_args


def test_grpo_with_lora_uses_the_adapter_free_base_as_reference(run_cli, tiny_models, tmp_path):
    out = tmp_path / "run"
    r = run_cli(
        "fit",
        *grpo_args(tiny_models["lm"], "grpo", "lora=on", "stage.grpo.kl_coef=0.1"),
        "trainer.max_steps=2",
        f"paths.output_dir={out}",
    )
    assert r.code == 0, r.err[-3000:]
    assert (out / "rlhf" / "hf_adapter" / "adapter_config.json").is_file()
    rows = [
        line.split(",") for line in (out / "rlhf" / "csv" / "metrics.csv").read_text().splitlines()
    ]
    head = rows[0]
    kls = [float(r[head.index("rlhf/kl")]) for r in rows[1:] if r[head.index("rlhf/kl")]]
    # step 1 of the adapters-off reference vs the trained adapters: a KL, finite and >= 0 (k3)
    assert len(kls) == 2 and all(k >= 0 for k in kls) and kls[-1] > 0, kls
    assert OmegaConf.load(out / "rlhf" / "config.yaml").stage.module.kl_coef == 0.1


def test_a_reward_without_spread_warns_after_n_steps(run_cli, tiny_models, tmp_path):
    # every reply of the random policy is 1-6 tokens: a length target of 0-500 characters
    # gives every reply 1.0, so every group is degenerate
    r = run_cli(
        "fit",
        *grpo_args(tiny_models["lm"]),
        "stage.reward=length",
        "stage.reward_options.length.min_chars=0",
        "stage.reward_options.length.max_chars=500",
        "stage.grpo.degenerate_warn_steps=2",
        "trainer.max_steps=3",
        f"paths.output_dir={tmp_path}",
    )
    assert r.code == 0, r.err[-3000:]
    text = r.out + r.err
    assert "every group's rewards have agreed for 2 steps" in text
    assert text.count("every group's rewards have agreed") == 1  # once per streak
    # no group with a spread: no update at all (Adam's momentum would still move the weights)
    rows = (tmp_path / "rlhf" / "csv" / "metrics.csv").read_text().splitlines()
    head = rows[0].split(",")
    updated = [r.split(",")[head.index("rlhf/updated")] for r in rows[1:]]
    assert [float(u) for u in updated if u] == [0.0, 0.0, 0.0]
    from tests.reliability.conftest import assert_same_weights

    assert_same_weights(tiny_models["lm"], tmp_path / "rlhf" / "hf")


def test_update_without_spread_updates_on_zero_advantages(run_cli, tiny_models, tmp_path):
    # TRL's behaviour (and the benchmark's setting): the update runs with zero advantages
    r = run_cli(
        "fit",
        *grpo_args(tiny_models["lm"]),
        "stage.reward=length",
        "stage.reward_options.length.min_chars=0",
        "stage.reward_options.length.max_chars=500",
        "stage.grpo.update_without_spread=true",
        "stage.grpo.kl_coef=0",
        "trainer.max_steps=1",
        f"paths.output_dir={tmp_path}",
    )
    assert r.code == 0, r.err[-3000:]
    rows = (tmp_path / "rlhf" / "csv" / "metrics.csv").read_text().splitlines()
    head = rows[0].split(",")
    updated = [r.split(",")[head.index("rlhf/updated")] for r in rows[1:]]
    assert [float(u) for u in updated if u] == [1.0]
