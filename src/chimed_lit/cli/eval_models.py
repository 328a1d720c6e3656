"""The models `chimed-lit eval` scores: a run's stages found on disk, a dir or Hub id checked and
loaded with plain transformers, and the memory given back between models."""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from chimed_lit.io.errors import CheckpointError
from chimed_lit.models.factory import loading

STAGE_ORDER = ("pretrain", "sft", "rlhf", "dpo")  # rows of the comparison table, in this order


def stage_models(run_dir: str | Path) -> list[tuple[str, Path]]:
    """(stage, hf dir) for every `<run_dir>/<stage>/hf` holding a causal LM (reward models, which
    are sequence classifiers, are left out), pretrain, sft, rlhf, dpo first."""
    found = []
    root = Path(run_dir)
    for d in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        config = d / "hf" / "config.json"
        if not config.is_file():
            continue
        archs = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
        if any(a.endswith("ForSequenceClassification") for a in archs):
            continue
        found.append((d.name, d / "hf"))
    rank = {s: i for i, s in enumerate(STAGE_ORDER)}
    return sorted(found, key=lambda x: (rank.get(x[0], len(rank)), x[0]))


def is_local_model(source: str) -> bool:
    """True when `source` names a directory (it exists, or reads as a path), not a Hub id."""
    path = Path(source).expanduser()
    return source.startswith((".", "/", "~")) or path.exists() or source.strip("/").count("/") > 1


def check_model_dir(source: str, key: str = "model.pretrained") -> None:
    """Raise a `CheckpointError` naming `key` when the local dir `source` is not a model."""
    if not is_local_model(source):
        return  # a Hub id
    path = Path(source).expanduser()
    if not path.is_dir():
        raise CheckpointError(
            f"{key}={source!r}: no such directory; pass a stage's "
            "hf/ folder (e.g. runs/a/sft/hf) or a Hub id"
        )
    if not (path / "config.json").is_file():
        raise CheckpointError(
            f"{key}={source!r} has no config.json: not a Hugging "
            "Face model directory (pass a stage's hf/ folder)"
        )


def load_model(source: str, mcfg: DictConfig, key: str = "model.pretrained") -> tuple[Any, Any]:
    """(causal LM in eval mode on its device, tokenizer with a pad token) via plain transformers;
    `key` is the setting that named `source`, for the error messages."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_model_dir(source, key)
    dtype = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}.get(mcfg.dtype, mcfg.dtype)
    trust = bool(mcfg.trust_remote_code)
    with loading(source, "tokenizer"):
        tok = AutoTokenizer.from_pretrained(source, trust_remote_code=trust)
    with loading(source, "model"):
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=getattr(torch, dtype), trust_remote_code=trust
        )
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    device = mcfg.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device).eval(), tok


def free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
