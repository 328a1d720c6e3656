"""MedicalGPT's two reward-data shapes (research-only samples, used by path, skipped if absent)
load whole, and a tiny reward model trains on them and reports its accuracy."""

from __future__ import annotations

import json
import math
from functools import partial

import lightning as L
import torch

from chimed_lit.modules.optim import WarmupCosine
from chimed_lit.modules.reward import RewardModule
from tests.conftest import shared

DPO = "preference/medicalgpt_dpo_zh_general.jsonl"  # {conversations, chosen, rejected}
MEDICAL = "preference/medicalgpt_reward_medical.jsonl"  # {question, response_chosen, ...}


def _count(path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def test_real_files_load_and_train(make_pref_dm, tiny_reward_model, demo_tok, tmp_path):
    dpo, medical = shared(DPO), shared(MEDICAL)
    dm = make_pref_dm(
        [str(dpo)],
        val_files=[str(medical)],
        max_length=256,
        batch_size=4,
        eval_batch_size=16,
        max_dropped_fraction=0.9,  # most general-domain DPO answers are longer than 256 tokens
    )
    s = dm.stats
    assert (s["train_records"], s["val_records"]) == (_count(dpo), _count(medical))
    assert s["train_skipped"] == s["val_skipped"] == 0
    for split in ("train", "val"):  # every pair is kept, truncated or dropped-and-counted
        assert s[f"{split}_pairs"] == s[f"{split}_examples"] + s[f"{split}_dropped"]
        assert s[f"{split}_examples"] > 0
    assert max(len(x) for x in dm.train_dataset["chosen_ids"]) <= 256
    # a system turn in `conversations` becomes the prompt's system message
    rec = next(
        r
        for r in map(json.loads, dpo.read_text(encoding="utf-8").splitlines())
        if r["conversations"][0]["from"] == "system"
    )
    prompt = dm.parse(rec)["prompt"]
    assert prompt[0] == {"role": "system", "content": rec["conversations"][0]["value"]}
    assert prompt[-1]["role"] == "user"

    L.seed_everything(0)
    module = RewardModule(
        tiny_reward_model(demo_tok).train(),
        partial(torch.optim.AdamW, lr=1e-3),
        WarmupCosine(warmup_steps=1),
    )
    trainer = L.Trainer(
        max_steps=4,
        limit_val_batches=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(module, datamodule=dm)
    trainer.validate(module, datamodule=dm, verbose=False)
    acc = float(trainer.callback_metrics["reward/accuracy"])
    print(f"real-data reward accuracy after 4 steps: {acc:.3f}")
    assert 0.0 <= acc <= 1.0 and math.isfinite(float(trainer.callback_metrics["reward/std"]))
