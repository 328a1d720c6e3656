"""A model's size from its config alone: built on the meta device, so no weights are touched.

The transformers config comes from `model.pretrained` (a local HF dir's config.json, or the
`known_models` table for the Hub ids we ship) or, with no `pretrained`, from `model.arch` as the
ModelFactory would build the random-init LLaMA."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from chimed_lit.io.errors import ConfigError
from chimed_lit.planning.known_models import KNOWN


@dataclass(frozen=True)
class ModelShape:
    """What memory depends on. `largest_layer_params` follows DeepSpeed's `model_to_params`: the
    most parameters any single module owns directly (ZeRO-3 gathers one such layer at a time)."""

    params: int
    largest_layer_params: int
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int


def config_dict(model: DictConfig) -> dict[str, Any]:
    """transformers config fields for `model` (a composed `model` group node)."""
    source = model.get("pretrained")
    if source is None:
        vocab = -(-int(model.get("vocab_size", 4096)) // 64) * 64  # ModelFactory rounds up to 64
        arch = OmegaConf.to_container(model.get("arch") or {}, resolve=True)
        return {"model_type": "llama", "vocab_size": vocab, **arch}
    local = Path(str(source)).expanduser() / "config.json"
    if local.is_file():
        import json

        return json.loads(local.read_text())
    if source in KNOWN:
        return dict(KNOWN[source])
    raise ConfigError(
        f"model.pretrained={source}: its size is unknown without downloading it; "
        f"plan with a local model dir, or one of {', '.join(sorted(KNOWN))}"
    )


def measure(fields: dict[str, Any], kind: str = "causal_lm") -> ModelShape:
    """Build the model on the meta device and count; `kind` is causal_lm or reward (a scalar
    head instead of the LM head)."""
    return _measure(tuple(sorted((k, _freeze(v)) for k, v in fields.items())), kind)


def _freeze(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


@lru_cache(maxsize=16)
def _measure(items: tuple, kind: str) -> ModelShape:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    fields = {k: list(v) if isinstance(v, tuple) else v for k, v in items}
    fields = {k: v for k, v in fields.items() if k not in ("architectures", "auto_map")}
    config = AutoConfig.for_model(**fields)
    if kind == "reward":
        config.num_labels = 1
    cls = AutoModelForSequenceClassification if kind == "reward" else AutoModelForCausalLM
    with torch.device("meta"):
        model = cls.from_config(config)
    params = sum(p.numel() for p in model.parameters())  # shared (tied) tensors once
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    heads = config.num_attention_heads
    return ModelShape(
        params=params,
        largest_layer_params=largest,
        layers=config.num_hidden_layers,
        hidden=config.hidden_size,
        heads=heads,
        kv_heads=getattr(config, "num_key_value_heads", None) or heads,
        head_dim=getattr(config, "head_dim", None) or config.hidden_size // heads,
        vocab=config.vocab_size,
    )
