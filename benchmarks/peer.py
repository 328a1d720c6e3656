"""TRL's side: the same stage on the same token ids, timed by the same `StepMeter`.

Usage (repo root): PYTHON -m benchmarks.peer SPEC.json OUT.json
PYTHON is the dev venv (trl 1.16, the `bench` extra) for pretrain/SFT/reward/DPO/GRPO and
benchmarks/.venv-trl112 (trl 1.12.0, the last release with PPOTrainer) for PPO. Only torch,
transformers, datasets and trl are imported here, never chimed_lit.

`spec["mode"]`: `default` keeps TRL's defaults for everything the comparison does not pin
(gradient checkpointing on, no packing); `fastest` uses its documented speed settings
(packing with BFD + padding-free for SFT/pre-training, gradient checkpointing off; trl 1.16's
DPO ignores `padding_free`, "temporarily unavailable", so its fastest is checkpointing off;
GRPO's documented speed-ups are vLLM generation, which needs a GPU, and checkpointing off, so on
CPU its fastest is checkpointing off).
Pinned for both sides: model init, data, batch, sequence length, precision, steps, learning
rate, no evaluation, no checkpoints, no logging integrations.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.step_meter import StepMeter


def _common(spec: dict[str, Any], out_dir: str) -> dict[str, Any]:
    fast = spec["mode"] == "fastest"
    kw = dict(
        output_dir=out_dir,
        per_device_train_batch_size=spec["batch"],
        max_steps=spec["steps"],
        learning_rate=spec.get("lr", 1e-3),
        report_to="none",
        save_strategy="no",
        eval_strategy="no",
        logging_steps=5,
        bf16=spec.get("device") == "cuda",
        use_cpu=spec.get("device") != "cuda",
        disable_tqdm=True,
        seed=spec.get("seed", 0),
        dataloader_num_workers=0,
    )
    if fast:
        kw["gradient_checkpointing"] = False
    return kw


def _metered(base: type, meter: StepMeter, pairs: bool = False) -> type:
    """The trainer class with its batches counted (HF Trainer calls `training_step` per batch)."""

    class Metered(base):
        def training_step(self, model, inputs, *args, **kwargs):
            meter.count(inputs, len(inputs["input_ids"]) // 2 if pairs else None)
            return super().training_step(model, inputs, *args, **kwargs)

    return Metered


def _step_callback(meter: StepMeter):
    from transformers import TrainerCallback

    class StepEnd(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            meter.step_end()

    return StepEnd()


def _load_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def run_sft(spec: dict[str, Any], meter: StepMeter, out_dir: str) -> None:
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    w = spec["workload"]
    root = Path(w["init"]).parent
    data = _load_json(
        root / ("trl_pretrain.json" if spec["stage"] == "pretrain" else "trl_sft.json")
    )
    ds = datasets.Dataset.from_dict(data)
    tok = AutoTokenizer.from_pretrained(w["init"])
    model = AutoModelForCausalLM.from_pretrained(w["init"], attn_implementation="sdpa")
    fast = spec["mode"] == "fastest"
    cfg = SFTConfig(
        **_common(spec, out_dir), max_length=spec["seq_len"], packing=fast, dataset_num_proc=None
    )
    trainer = _metered(SFTTrainer, meter)(
        model=model,
        args=cfg,
        train_dataset=ds,
        processing_class=tok,
        callbacks=[_step_callback(meter)],
    )
    trainer.train()


def run_reward(spec: dict[str, Any], meter: StepMeter, out_dir: str) -> None:
    import datasets
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    w = spec["workload"]
    data = _load_json(Path(w["init"]).parent / "trl_pref.json")
    ds = datasets.Dataset.from_dict(
        {"chosen_ids": data["chosen_ids"], "rejected_ids": data["rejected_ids"]}
    )
    tok = AutoTokenizer.from_pretrained(w["reward_init"])
    model = AutoModelForSequenceClassification.from_pretrained(
        w["reward_init"], num_labels=1, attn_implementation="sdpa"
    )
    model.config.pad_token_id = tok.pad_token_id
    cfg = RewardConfig(**_common(spec, out_dir), max_length=spec["seq_len"])
    trainer = _metered(RewardTrainer, meter, pairs=True)(
        model=model,
        args=cfg,
        train_dataset=ds,
        processing_class=tok,
        callbacks=[_step_callback(meter)],
    )
    trainer.train()


def run_dpo(spec: dict[str, Any], meter: StepMeter, out_dir: str) -> None:
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    w = spec["workload"]
    data = _load_json(Path(w["init"]).parent / "trl_dpo.json")
    ds = datasets.Dataset.from_dict(data)
    tok = AutoTokenizer.from_pretrained(w["init"])
    model = AutoModelForCausalLM.from_pretrained(w["init"], attn_implementation="sdpa")
    cfg = DPOConfig(**_common(spec, out_dir), max_length=spec["seq_len"])

    class Tokenized(DPOTrainer):
        """trl 1.16's DPO re-tokenizes text; the pairs here are already chimed-lit's token ids
        (prompt_ids / chosen_ids / rejected_ids, within max_length), which its collator takes."""

        def _prepare_dataset(self, dataset, *args, **kwargs):
            return dataset

    trainer = _metered(Tokenized, meter, pairs=True)(
        model=model,
        args=cfg,
        train_dataset=ds,
        processing_class=tok,
        callbacks=[_step_callback(meter)],
    )
    trainer.train()


def run_ppo(spec: dict[str, Any], meter: StepMeter, out_dir: str) -> None:
    """trl 1.12's PPOTrainer with our PPO settings: response length, PPO epochs, one minibatch
    per rollout batch, sampling temperature 1, no early stop (ours runs with
    target_approx_kl=null), no sample generations during training."""
    import datasets
    import trl.experimental.ppo.ppo_trainer as ppo_mod
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    w, ppo = spec["workload"], spec["ppo"]
    data = _load_json(Path(w["init"]).parent / "trl_prompts.json")
    ds = datasets.Dataset.from_dict(data)
    tok = AutoTokenizer.from_pretrained(w["init"])
    tok.padding_side = "left"

    def lm():
        return AutoModelForCausalLM.from_pretrained(w["init"], attn_implementation="sdpa")

    def rm():
        return AutoModelForSequenceClassification.from_pretrained(
            w["reward_init"], num_labels=1, attn_implementation="sdpa"
        )

    kw = _common(spec, out_dir)
    kw.pop("max_steps")
    cfg = PPOConfig(
        **kw,
        total_episodes=spec["steps"] * spec["batch"],
        response_length=ppo["response_length"],
        num_ppo_epochs=ppo["ppo_epochs"],
        num_mini_batches=max(1, spec["batch"] // ppo["minibatch"]),
        temperature=1.0,
        num_sample_generations=0,
        stop_token="eos",
        kl_coef=0.05,
    )
    gen_time = [0.0]
    original = ppo_mod.batch_generation

    def timed_generation(*args, **kwargs):  # the rollout's sampling, for the generate/train split
        t0 = time.perf_counter()
        out = original(*args, **kwargs)
        gen_time[0] += time.perf_counter() - t0
        return out

    ppo_mod.batch_generation = timed_generation
    from transformers import TrainerCallback

    class StepEnd(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            meter.count({}, spec["batch"])
            meter.step_end(time_generate=gen_time[0])
            gen_time[0] = 0.0

    trainer = PPOTrainer(
        args=cfg,
        processing_class=tok,
        model=lm(),
        ref_model=lm(),
        reward_model=rm(),
        value_model=rm(),
        train_dataset=ds,
        callbacks=[StepEnd()],
    )
    trainer.train()


_LETTERS = re.compile(r"[A-E]")


def letter_reward(completions: list[str], answers: list[str], **_: object) -> list[float]:
    """The peer's verifiable MCQ reward: 1.0 when the set of option letters (A-E) a completion
    names equals the gold set (`answers`, e.g. "B" or "AC"), else 0.0. A plain exact letter
    match; chimed-lit's `mcq` reward parses answers more strictly (eval's parser), and both cost
    microseconds per completion next to generating it."""
    return [
        1.0 if set(_LETTERS.findall(text)) == set(gold) else 0.0
        for text, gold in zip(completions, answers, strict=True)
    ]


def grpo_config_kwargs(spec: dict[str, Any], out_dir: str) -> dict[str, Any]:
    """GRPOConfig for our GRPO settings: `batch` prompts x `group_size` completions generated
    and used for one optimizer step (per_device_train_batch_size counts completions, one
    generation per step, one iteration), the same response length, sampling (temperature 1, no
    top-p/top-k), KL coefficient (beta; 0: no reference model), clip range, GRPO's
    per-sequence token mean with group-std advantages (`loss_type="grpo"`, our preset), the
    same AdamW betas and a constant learning rate; prompts in our loader's order (no shuffle)."""
    g = spec["grpo"]
    kw = _common(spec, out_dir)
    kw.update(
        per_device_train_batch_size=spec["batch"] * g["group_size"],
        gradient_accumulation_steps=1,
        steps_per_generation=1,
        num_generations=g["group_size"],
        max_completion_length=g["max_new_tokens"],
        num_iterations=g["update_epochs"],
        beta=g["kl_coef"],
        loss_type="grpo",
        scale_rewards="group",
        epsilon=0.2,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        use_vllm=False,
        shuffle_dataset=False,
        lr_scheduler_type="constant",
        adam_beta2=0.95,
        max_grad_norm=1.0,
        disable_dropout=True,
        log_completions=False,
    )
    return kw


def run_grpo(spec: dict[str, Any], meter: StepMeter, out_dir: str) -> None:
    """trl 1.16's GRPOTrainer (transformers generation, no vLLM) on our MCQ prompts as token
    ids, each step's prompts those of our step (our loader's order, `spec["prompt_order"]`)."""
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    w, g = spec["workload"], spec["grpo"]
    data = _load_json(Path(w["init"]).parent / "trl_mcq.json")
    ds = datasets.Dataset.from_dict(data)
    order = spec.get("prompt_order")
    if order:
        ds = ds.select(order)
    tok = AutoTokenizer.from_pretrained(w["init"])
    model = AutoModelForCausalLM.from_pretrained(w["init"], attn_implementation="sdpa")
    cfg = GRPOConfig(**grpo_config_kwargs(spec, out_dir))
    state = {"ids": None, "time_generate": 0.0, "gen_tokens": 0}

    class TokenIds(GRPOTrainer):
        """Prompts go to generation as our DataModule's token ids (not re-tokenized text)."""

        def _generate_and_score_completions(self, inputs):
            state["ids"] = [list(x["prompt_ids"]) for x in inputs]
            meter.note_prompts(state["ids"][:: g["group_size"]])  # rows repeat each prompt G times
            return super()._generate_and_score_completions(inputs)

        def _tokenize_prompts(self, prompts):
            return state["ids"], None, {}

        def _generate_single_turn(self, *args, **kwargs):
            t0 = time.perf_counter()
            completion_ids, logprobs = super()._generate_single_turn(*args, **kwargs)
            state["time_generate"] += time.perf_counter() - t0
            state["gen_tokens"] += sum(map(len, completion_ids))  # EOS included when sampled
            return completion_ids, logprobs

    class StepEnd(TrainerCallback):
        def on_step_end(self, args, state_, control, **kwargs):
            meter.count({}, spec["batch"])
            meter.step_end(time_generate=state["time_generate"], gen_tokens=state["gen_tokens"])
            state["time_generate"], state["gen_tokens"] = 0.0, 0

    trainer = TokenIds(
        model=model,
        reward_funcs=letter_reward,
        args=cfg,
        train_dataset=ds,
        processing_class=tok,
        callbacks=[StepEnd()],
    )
    trainer.train()


RUNNERS = {
    "pretrain": run_sft,
    "sft": run_sft,
    "reward": run_reward,
    "dpo": run_dpo,
    "rlhf": run_ppo,
    "grpo": run_grpo,
}


def main(spec_file: str, out_file: str) -> int:
    spec = json.loads(Path(spec_file).read_text())
    meter = StepMeter(Path(out_file), spec["workload"]["pad_id"], spec["warmup"])
    with tempfile.TemporaryDirectory(prefix="bench-trl-") as tmp:
        RUNNERS[spec["stage"]](spec, meter, tmp)
    meter.write()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
