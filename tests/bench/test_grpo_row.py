"""The GRPO benchmark row's pure pieces (no timings): the peer's reward, the settings each side
is given (composed through our config tree, and as trl's GRPOConfig resolves them), the prompt
order TRL is given against the order our loader really yields, and the per-step prompt check."""

from __future__ import annotations

import pytest
from benchmarks import report
from benchmarks.ours import overrides
from benchmarks.peer import grpo_config_kwargs, letter_reward
from benchmarks.run import grpo_plan, rate_and_mfu
from benchmarks.step_meter import StepMeter, prompt_digest
from benchmarks.workload import rollout_order

GRPO = grpo_plan(group_size=4, max_new_tokens=16)


def _spec(tmp_path, **extra):
    init = str(tmp_path / "init")
    return {
        "stage": "grpo",
        "workload": {
            "init": init,
            "reward_init": str(tmp_path / "reward_init"),
            "pad_id": 0,
            "mcq": {
                "train": str(tmp_path / "train.csv"),
                "val": str(tmp_path / "val.jsonl"),
                "max_length": 128,
                "on_bad_record": "skip",
            },
        },
        "batch": 8,
        "seq_len": 256,
        "steps": 6,
        "warmup": 2,
        "grpo": GRPO,
        "lr": 1e-3,
        "device": "cpu",
        "mode": "default",
        **extra,
    }


def test_letter_reward_is_an_exact_letter_set_match():
    completions = ["B", "答案：B", "AC", "A", "", "ABCDE", "C。", "a"]
    answers = ["B", "B", "AC", "AC", "B", "B", "B", "A"]
    assert letter_reward(completions, answers) == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    # the trainer passes more keyword arguments (prompts, completion_ids, trainer_state ...)
    assert letter_reward(["D"], ["D"], prompts=["q"], completion_ids=[[1]]) == [1.0]


def test_our_side_composes_to_the_pinned_grpo_settings(tmp_path):
    from chimed_lit.run.compose import compose_stage, composing
    from chimed_lit.stages.grpo import GRPO as GRPOStage

    args = overrides(_spec(tmp_path), str(tmp_path / "run"), str(tmp_path / "meter.json"))
    assert args[0] == "stage=rlhf"
    with composing():
        cfg = compose_stage("rlhf", args[1:], str(tmp_path / "run"), own=True)
    module = GRPOStage().module_config(cfg)
    assert module["group_size"] == 4
    assert module["sampling"]["max_new_tokens"] == 16
    assert module["update_epochs"] == 1 and module["minibatch_size"] is None
    assert module["kl_coef"] == 0.0  # no reference model, as TRL's beta=0
    assert module["aggregation"] == "seq_mean_token_mean" and module["advantage"] == "grpo"
    assert module["clip_low"] == module["clip_high"] == 0.2
    assert module["optimizer"]["lr"] == 1e-3
    assert module["reward"] == "mcq"
    assert cfg.stage.algorithm == "grpo" and cfg.stage.policy == str(tmp_path / "init")
    assert cfg.data._target_.endswith("MCQDemoPromptDataModule")
    assert cfg.data.batch_size == 8 and cfg.data.max_length == 128
    assert list(cfg.data.train_files) == [str(tmp_path / "train.csv")]
    assert GRPOStage().needs(cfg) == []  # no sft stage, no reward model


def test_trl_side_takes_one_step_per_rollout_of_batch_prompts_times_group(tmp_path):
    pytest.importorskip("trl")
    from trl import GRPOConfig

    for mode, checkpointing in (("default", True), ("fastest", False)):
        cfg = GRPOConfig(**grpo_config_kwargs(_spec(tmp_path, mode=mode), str(tmp_path / "o")))
        # per_device_train_batch_size counts completions: 8 prompts x 4, one generation a step
        assert cfg.per_device_train_batch_size == cfg.generation_batch_size == 32
        assert cfg.steps_per_generation == 1 and cfg.gradient_accumulation_steps == 1
        assert cfg.num_generations == 4 and cfg.max_completion_length == 16
        assert cfg.num_iterations == 1 and cfg.beta == 0.0
        assert cfg.loss_type == "grpo" and cfg.scale_rewards == "group"
        assert cfg.temperature == 1.0 and cfg.top_p == 1.0 and cfg.top_k == 0
        assert not cfg.bf16 and not cfg.use_vllm and not cfg.shuffle_dataset
        assert cfg.learning_rate == 1e-3 and cfg.max_steps == 6
        assert cfg.gradient_checkpointing is checkpointing


def test_trl_gets_the_prompts_our_loader_yields_in_order(tmp_path):
    """Each of TRL's steps (its sampler unshuffled over the dataset in `rollout_order`) samples
    for the prompts of our step with the same number: our loader's batches, same seed."""
    from chimed_lit.data.prompts import MCQDemoPromptDataModule
    from chimed_lit.demo import demo_path
    from chimed_lit.models.factory import ModelFactory

    tok = ModelFactory(
        cache_dir=str(tmp_path),
        arch={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
        },
    ).load_tokenizer()
    for seed in (0, 1):
        dm = MCQDemoPromptDataModule(
            tokenizer=tok,
            train_files=[demo_path("mcq_train.jsonl")],
            val_files=[demo_path("mcq_val.jsonl")],
            max_length=128,
            batch_size=8,
            seed=seed,
            cache_dir=str(tmp_path / "cache"),
        )
        dm.setup("fit")
        ids = dm.train_dataset.with_format(None)["prompt_ids"]  # the file order TRL's data has
        order = rollout_order(len(ids), seed)
        loader = iter(dm.train_dataloader())
        for step in range(3):
            batch = next(loader)
            theirs = [ids[i] for i in order[step * 8 : (step + 1) * 8]]
            assert prompt_digest(batch["prompt_ids"]) == prompt_digest(theirs)
    assert rollout_order(len(ids), 0) != rollout_order(len(ids), 1)


def test_prompt_digests_and_the_same_prompts_check():
    a, b = [[5, 6, 7], [8, 9]], [[8, 9], [5, 6, 7]]
    assert prompt_digest(a) == prompt_digest([list(x) for x in a])
    assert prompt_digest(a) != prompt_digest(b)  # order matters: the step's batch, in order
    meter = StepMeter("unused.json", pad_id=0, warmup=0)
    for prompts in (a, None, b):
        if prompts:
            meter.note_prompts(prompts)
        meter.count({}, 2)
        meter.step_end(gen_tokens=10.0)
    assert meter.digests == [prompt_digest(a), "", prompt_digest(b)]
    assert meter.summary()["prompt_digests"] == meter.digests

    same = {"ours": [{"prompt_digests": ["x", "y"]}], "trl_default": [{"prompt_digests": ["x"]}]}
    assert report.same_prompts(same) is True
    other = {"ours": [{"prompt_digests": ["x", "y"]}], "trl": [{"prompt_digests": ["x", "z"]}]}
    assert report.same_prompts(other) is False
    assert report.same_prompts({"ours": [{}], "trl112_default": [{}]}) is None


def test_generated_tokens_per_second_and_per_prompt_in_the_rollout_table():
    res = {
        "elapsed_s": 4.0,
        "timed_steps": 2,
        "items": 16,
        "tokens": 0,
        "pairs": 0,
        "cpu_s": 8.0,
        "peak_rss_mb": 900.0,
        "extra": {"time_generate": 1.0, "gen_tokens": 1024.0},
    }
    out = rate_and_mfu("grpo", res, {}, None)
    assert out["rate"] == 4.0 and out["gen_tokens_per_s"] == 256.0
    assert out["gen_tokens_per_prompt"] == 64.0  # group 4 x 16 tokens: no early stop
    assert out["generate_frac"] == 0.25
    peer = dict(res, elapsed_s=8.0, peak_rss_mb=1200.0)
    sides = report.summarise({"ours": [out], "trl_default": [rate_and_mfu("grpo", peer, {}, None)]})
    assert sides["trl_default"]["ours_over_this"] == 2.0
    results = {"grpo": {"unit": "prompts/s", "sides": sides, "same_prompts": True}}
    table = report.format_rollouts(results)
    assert "gen tok/s" in table and "  256" in table and "64.0" in table and "25%" in table
    assert "same prompts at every step on all sides: True" in table
    # rows without sampled-token counts (the other stages) add nothing
    assert report.format_rollouts({"sft": {"unit": "tokens/s", "sides": {"ours": {}}}}) == ""
    assert "letter_reward" in report.format_notes({"grpo": {"notes": report.NOTES["grpo"]}})


@pytest.mark.parametrize("stage", ["reward", "dpo"])
def test_pair_rows_accept_the_drops_the_workload_accepted(tmp_path, stage):
    """The workload keeps the pairs that fit (a quarter of the shared sample's responses alone
    fill 256 tokens); our side is told the same limit, so both train on the pairs TRL gets."""
    from benchmarks.workload import PREF_MAX_DROPPED

    from chimed_lit.run.compose import compose_stage, composing

    pref = {"train": "p.jsonl", "val": "v.jsonl", "max_dropped_fraction": PREF_MAX_DROPPED}
    spec = dict(_spec(tmp_path), stage=stage)
    spec["workload"] = dict(spec["workload"], pref=pref)
    args = overrides(spec, str(tmp_path / "run"), str(tmp_path / "meter.json"))
    with composing():
        cfg = compose_stage(stage, args[1:], str(tmp_path / "run"), own=True)
    assert cfg.data.max_dropped_fraction == PREF_MAX_DROPPED
