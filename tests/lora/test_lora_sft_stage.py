"""`chimed-lit fit stage=sft lora=on`: only adapters train, the loss falls, and the merged
export is the adapter model."""

from __future__ import annotations

import json
from pathlib import Path

import torch

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def summary(run: Path, stage: str) -> dict:
    return json.loads((run / stage / "summary.json").read_text())


def test_lora_sft_lowers_the_loss(lora_sft_run):
    run, _ = lora_sft_run
    s = summary(run, "sft")
    assert s["final"]["sft/val_loss"] < 0.9 * s["initial"]["sft/val_loss"], s
    assert s["adapter_dir"] == str(run / "sft" / "hf_adapter")


def test_only_adapter_targets_moved(lora_sft_run):
    """Against the pretrained model it started from, the merged weights differ exactly in the
    adapted projections; embeddings, norms and the LM head are untouched."""
    from transformers import AutoModelForCausalLM

    run, base = lora_sft_run
    before = AutoModelForCausalLM.from_pretrained(base).state_dict()
    after = AutoModelForCausalLM.from_pretrained(run / "sft" / "hf").state_dict()
    assert set(after) == set(before)  # plain transformers keys: no lora_A / base_layer left
    for name, weight in after.items():
        if any(f".{t}." in name for t in TARGETS):
            assert not torch.equal(weight, before[name]), name
        else:
            assert torch.equal(weight, before[name]), name


def test_merged_export_matches_the_adapter_model(lora_sft_run):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run, base_dir = lora_sft_run
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    adapter = PeftModel.from_pretrained(base, run / "sft" / "hf_adapter").eval()
    merged = AutoModelForCausalLM.from_pretrained(run / "sft" / "hf").eval()
    ids = torch.randint(5, 1000, (2, 24))
    with torch.no_grad():
        want = adapter(input_ids=ids).logits
        got = merged(input_ids=ids).logits
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert (run / "sft" / "hf_adapter" / "tokenizer_config.json").is_file()
