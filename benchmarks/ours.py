"""chimed-lit's side: one stage run by `chimed-lit fit`, as a user runs it, timed by a callback.

Usage (from the repo root): python -m benchmarks.ours SPEC.json OUT.json
The spec names the stage, the workload (model init + data files) and the shared settings; the
run is the real CLI path (Hydra compose, ModelFactory, DataModule, LightningModule, Lightning
Trainer with the default callbacks), with logging off, validation off and checkpoints only at
the end, so steps are timed as in a user's run between validations.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

DATA = {
    "pretrain": "pretrain",
    "sft": "sft",
    "reward": "pref",
    "dpo": "pref",
    "rlhf": "prompts",
    "grpo": "mcq",
}
# benchmark rows that run a stage under another name (`grpo`: the rlhf stage's GRPO algorithm)
CLI_STAGE = {"grpo": "rlhf"}


def overrides(spec: dict[str, Any], out_dir: str, meter_path: str) -> list[str]:
    w, stage = spec["workload"], spec["stage"]
    data = w[DATA[stage]]
    args = [
        f"stage={CLI_STAGE.get(stage, stage)}",
        f"paths.output_dir={out_dir}",
        "logger=none",
        f"model.pretrained={w['init']}",
        f"seed={spec.get('seed', 0)}",
        f"trainer.max_steps={spec['steps']}",
        "trainer.limit_val_batches=0",
        f"trainer.val_check_interval={spec['steps']}",
        "trainer.enable_progress_bar=false",
        f"checkpoint.every_n_steps={10 * spec['steps'] + 1000}",
        f"data.train_files=[{data['train']}]",
        f"data.val_files=[{data['val']}]",
        f"data.batch_size={spec['batch']}",
        "+callbacks.bench_meter._target_=benchmarks.step_meter.LightningMeter",
        f"+callbacks.bench_meter.path={meter_path}",
        f"+callbacks.bench_meter.pad_id={w['pad_id']}",
        f"+callbacks.bench_meter.warmup={spec['warmup']}",
    ]
    if spec.get("device") == "cuda":
        args += ["trainer=gpu"]
    if stage in ("pretrain", "sft", "reward", "dpo"):
        args += [f"data.max_length={spec['seq_len']}"]
    if stage == "sft" and spec.get("pack") is not None:
        args += [f"data.pack={str(spec['pack']).lower()}"]
    if stage in ("sft", "reward", "dpo"):
        args += ["stage.needs=[]"]
    if stage in ("reward", "dpo"):  # the pairs TRL gets are those kept (workload.py)
        args += [f"data.max_dropped_fraction={data.get('max_dropped_fraction', 0.05)}"]
    if stage == "rlhf":
        ppo = spec["ppo"]
        args += [
            "stage.needs=[]",
            f"stage.policy={w['init']}",
            f"stage.reward_model={w['reward_init']}",
            f"stage.module.sampling.max_new_tokens={ppo['response_length']}",
            f"stage.module.ppo_epochs={ppo['ppo_epochs']}",
            f"stage.module.minibatch_size={ppo['minibatch']}",
            "stage.module.target_approx_kl=null",
            "stage.module.table_every_n_steps=0",
            f"data.max_length={w['prompts']['max_length']}",
        ]
    if stage == "grpo":
        args += grpo_overrides(spec)
    return args + list(spec.get("extra_overrides", []))


def grpo_overrides(spec: dict[str, Any]) -> list[str]:
    """`stage=rlhf stage.algorithm=grpo` on the MCQ prompts with the verifiable `mcq` reward:
    group size, response length, update epochs (one update over the whole rollout), KL
    coefficient and learning rate as the spec pins them for TRL too; no sample tables."""
    w, g = spec["workload"], spec["grpo"]
    return [
        "data=mcq_demo",
        "stage.algorithm=grpo",
        f"stage.policy={w['init']}",
        "stage.reward=mcq",
        f"stage.grpo.group_size={g['group_size']}",
        f"stage.grpo.sampling.max_new_tokens={g['max_new_tokens']}",
        f"stage.grpo.update_epochs={g['update_epochs']}",
        "stage.grpo.minibatch_size=null",
        f"stage.grpo.kl_coef={g['kl_coef']}",
        # TRL updates on every rollout, zero advantages included (a random init's groups all
        # score 0): ours does the same update work, not its default skip
        "stage.grpo.update_without_spread=true",
        f"stage.grpo.optimizer.lr={spec.get('lr', 1e-3)}",
        "stage.grpo.table_every_n_steps=0",
        f"data.max_length={w['mcq']['max_length']}",
        f"data.on_bad_record={w['mcq']['on_bad_record']}",
    ]


def main(spec_file: str, out_file: str) -> int:
    spec = json.loads(Path(spec_file).read_text())
    from chimed_lit.cli.main import main as cli

    with tempfile.TemporaryDirectory(prefix="bench-ours-") as tmp:
        meter = Path(tmp) / "meter.json"
        code = cli(["fit", *overrides(spec, str(Path(tmp) / "run"), str(meter))])
        result = (
            json.loads(meter.read_text())
            if meter.is_file()
            else {"error": f"chimed-lit fit exited {code} without timing"}
        )
    Path(out_file).write_text(json.dumps(result))
    return 0 if code in (0, None) else int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
