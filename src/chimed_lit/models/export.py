"""Exporting a stage's model as a plain Hugging Face directory.

`export_hf` is the one place a stage's weights leave training: `<stage>/hf/` holds the model
and tokenizer that plain transformers loads. A model trained with LoRA adapters is exported
twice: the adapters merged into the base weights (`hf/`, no peft needed to load it), and the
adapter alone (`hf_adapter/`, a peft directory naming its base, plus the tokenizer). Each
directory is written to a temporary name and renamed (`atomic.write_dir`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from chimed_lit.io.atomic import write_dir
from chimed_lit.models.lora import peft_model_of

ADAPTER_DIR = "hf_adapter"


def export_hf(
    model: torch.nn.Module,
    tokenizer: Any,
    stage_dir: Path,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> dict[str, str]:
    """Write `stage_dir/hf/` (and `hf_adapter/` for a LoRA model); returns the paths written.
    Merging modifies the model in place: call it once, when training is over. `state_dict`:
    the full weights when the model in memory is sharded (`plugins.full_weights`)."""
    out = {"hf_dir": str(stage_dir / "hf")}
    peft = peft_model_of(model)
    if peft is not None:

        def fill_adapter(tmp: Path) -> None:
            peft.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)

        write_dir(stage_dir / ADAPTER_DIR, fill_adapter)
        out["adapter_dir"] = str(stage_dir / ADAPTER_DIR)
        model = peft.merge_and_unload()
        if getattr(model, "hf_quantizer", None) is not None:  # QLoRA: hf/ in plain bf16 weights
            model = model.dequantize()
        state_dict = None  # keys of the adapter model; the merged weights are the model's own

    def fill(tmp: Path) -> None:
        model.save_pretrained(tmp, state_dict=state_dict)
        tokenizer.save_pretrained(tmp)

    write_dir(stage_dir / "hf", fill)
    return out
