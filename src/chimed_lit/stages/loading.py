"""Loading the models a stage trains: plain, or 4/8-bit for QLoRA, with LoRA adapters.

Trained models come back in train mode: `from_pretrained` returns eval mode, which Lightning
keeps, and transformers checkpoints activations (`model.gradient_checkpointing`) only in train
mode. Frozen references are put in eval mode by their modules.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import torch
from omegaconf import DictConfig

from chimed_lit.models import lora

log = logging.getLogger("chimed_lit")


def tokenizer_for(factory: Any, source: str | None) -> Any:
    """The tokenizer of the model dir `source` (None: the factory's own)."""
    if source is None:
        return factory.load_tokenizer()
    return replace(factory, pretrained=source, tokenizer=None).load_tokenizer()


def causal_lm(cfg: DictConfig, factory: Any, tok: Any, source: str | None) -> torch.nn.Module:
    """A trained causal LM from `source` (None: `model.pretrained` or a fresh one)."""
    spec = cfg.get("lora")
    if lora.quantization_kwargs(spec):
        return lora.load_quantized(factory, tok, source or factory.pretrained, spec).train()
    return factory.load_causal_lm(tok, pretrained=source).train()


def reward_model(cfg: DictConfig, factory: Any, tok: Any, source: str | None) -> torch.nn.Module:
    """A trained scalar-head model (`*ForSequenceClassification`, one output) from `source`."""
    spec = cfg.get("lora")
    if lora.quantization_kwargs(spec):
        return lora.load_quantized(
            factory, tok, source or factory.pretrained, spec, classifier=True
        ).train()
    return factory.load_reward_model(tok, pretrained=source).train()


def with_reference(cfg: DictConfig) -> bool:
    """Whether frozen copies (reference policy, reward model) are loaded: not with LoRA, where
    they are the trained models with their adapters disabled."""
    return not lora.lora_enabled(cfg.get("lora"))


def with_adapters(
    cfg: DictConfig, models: dict[str, Any], targets: dict[str, str]
) -> dict[str, Any]:
    """`models` with LoRA adapters on `targets` (name -> peft task type) when LoRA is on."""
    spec = cfg.get("lora")
    if not lora.lora_enabled(spec):
        return models
    out = dict(models)
    for name, task_type in targets.items():
        out[name] = lora.add_adapters(spec, models[name], task_type)
        n_train, n_all = lora.count_parameters(out[name])
        log.info(
            "LoRA on %s: %d of %d parameters train (%.2f%%), rank %d",
            name,
            n_train,
            n_all,
            100 * n_train / max(n_all, 1),
            spec.rank,
        )
    return out
