"""A model directory is checked for the role it plays, from its config.json, before any weights load.

transformers loads a reward model's dir as a causal LM (a fresh random LM head) or a causal LM's
dir as a reward model (a fresh random scalar head) with no more than a log line: a run would
train or score against noise for hours. These checks turn that into one clear error; each stage
(`chimed_lit.stages`, `Stage.check_models`) says which role each of its start dirs plays.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chimed_lit.io.errors import CheckpointError

CAUSAL = "ForCausalLM"
SCALAR = "ForSequenceClassification"


def _config(source: str) -> dict[str, Any] | None:
    """A local dir's config.json (None for Hub ids, or dirs `ModelFactory` checks itself)."""
    path = Path(str(source)).expanduser() / "config.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not a readable config.json ({e})") from None


def _arch(cfg: dict[str, Any]) -> str:
    return (cfg.get("architectures") or [cfg.get("model_type", "unknown")])[0]


def check_causal_lm(source: str, role: str, also: tuple[str, ...] = ()) -> None:
    """`source` holds a causal LM (or one of the `also` heads)."""
    cfg = _config(source)
    if cfg is None or not cfg.get("architectures"):
        return
    if not any(a.endswith((CAUSAL, *also)) for a in cfg["architectures"]):
        raise CheckpointError(
            f"{role}={source!r} holds a {_arch(cfg)}, not a causal language "
            f"model (*{CAUSAL}): pass a pretrain, sft or rlhf stage's hf/ "
            "folder or a causal LM from the Hub"
        )


def check_reward_model(source: str, role: str = "stage.reward_model") -> None:
    """`source` holds a trained scalar head: *ForSequenceClassification with one output."""
    cfg = _config(source)
    if cfg is None:
        return
    archs = cfg.get("architectures") or []
    if not any(a.endswith(SCALAR) for a in archs):
        raise CheckpointError(
            f"{role}={source!r} has no scalar reward head (it holds a "
            f"{_arch(cfg)}): pass the reward stage's hf/ folder "
            f"(*{SCALAR}, num_labels=1)"
        )
    labels = len(cfg.get("id2label") or {}) or int(cfg.get("num_labels", 1))
    if labels != 1:
        raise CheckpointError(
            f"{role}={source!r} has {labels} outputs; a reward model has exactly one (num_labels=1)"
        )
