"""LoRA and QLoRA through peft, applied in one place: after a stage's models are built.

`lora=on` wraps the models a stage trains (the causal LM of pretrain / SFT / DPO, the reward
model, PPO's actor and critic) with low-rank adapters on `lora.target_modules[model_type]`;
every base weight is frozen, so the optimizers (which take trainable parameters only) update
the adapters alone, plus `lora.modules_to_save` (a reward or value model's fresh `score` head).
A frozen reference is then not loaded at all: it is the trained model with its adapters
disabled (`reference_of`), one base model in memory.

QLoRA (`lora=qlora`, or `lora.quantize=4bit|8bit`) loads the base weights quantized by
bitsandbytes, which needs a CUDA GPU; elsewhere it stops with a `ConfigError`.

Causal LMs are handed to the modules as peft's `PeftModel` (it forwards `forward`, `generate`
and `config`). Sequence classifiers are handed over unwrapped (adapters injected in place):
the reward and value code reads `model.<base_model_prefix>` and `model.score`, which a
`PeftModel` would resolve to the wrong objects. Their wrapper stays reachable through
`peft_model_of`, for export and for disabling adapters.
"""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig

from chimed_lit.io.errors import ConfigError

_WRAPPER = "_chimed_peft_wrapper"  # attribute of an unwrapped classifier holding its PeftModel


def lora_enabled(lora: DictConfig | None) -> bool:
    """True for `lora=on`, `lora=qlora` or a `lora.quantize` setting."""
    return bool(lora) and bool(lora.get("enabled") or lora.get("quantize"))


def check_quantize(lora: DictConfig | None) -> None:
    """QLoRA needs bitsandbytes on a CUDA GPU: say so before anything is loaded."""
    if not lora_enabled(lora) or not lora.get("quantize"):
        return
    if lora.quantize not in ("4bit", "8bit"):
        raise ConfigError(f"lora.quantize={lora.quantize!r}: use 4bit, 8bit or null")
    if not torch.cuda.is_available():
        raise ConfigError(
            f"lora.quantize={lora.quantize} (QLoRA) needs a CUDA GPU for "
            "bitsandbytes, and none is visible here: use lora=on (unquantized "
            "LoRA) on this machine"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ConfigError(
            f"lora.quantize={lora.quantize} (QLoRA) needs bitsandbytes: pip install bitsandbytes"
        ) from None


def quantization_kwargs(lora: DictConfig | None) -> dict[str, Any]:
    """`from_pretrained` arguments loading the base quantized (empty without QLoRA)."""
    if not lora_enabled(lora) or not lora.get("quantize"):
        return {}
    from transformers import BitsAndBytesConfig

    if lora.quantize == "8bit":
        return {"quantization_config": BitsAndBytesConfig(load_in_8bit=True)}
    return {
        "quantization_config": BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
    }


def load_quantized(
    factory: Any, tokenizer: Any, source: str, lora: DictConfig, classifier: bool = False
) -> torch.nn.Module:
    """The model at `source` with its base weights quantized (QLoRA): a causal LM, or a
    one-output sequence classifier (reward / value model)."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    if source is None:
        raise ConfigError(
            "lora.quantize needs pretrained weights to quantize: set "
            "model.pretrained or start from an upstream stage"
        )
    auto = AutoModelForSequenceClassification if classifier else AutoModelForCausalLM
    extra = {"num_labels": 1} if classifier else {}
    model = auto.from_pretrained(
        source,
        dtype=torch.bfloat16,
        device_map={"": 0},
        attn_implementation=factory.attention(),
        trust_remote_code=factory.trust_remote_code,
        **quantization_kwargs(lora),
        **extra,
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def target_modules(lora: DictConfig, model: torch.nn.Module) -> list[str]:
    """The module names adapted for this model's architecture (`config.model_type`)."""
    kind = model.config.model_type
    table = lora.target_modules
    if kind not in table:
        raise ConfigError(
            f"lora.target_modules has no entry for model_type {kind!r} (known: "
            f"{', '.join(table)}); add one, e.g. "
            f"+lora.target_modules.{kind}=[q_proj,v_proj]"
        )
    return list(table[kind])


def add_adapters(lora: DictConfig, model: torch.nn.Module, task_type: str) -> torch.nn.Module:
    """`model` with fresh LoRA adapters, base frozen. CAUSAL_LM: the `PeftModel`;
    SEQ_CLS: the model itself, adapters injected (its wrapper via `peft_model_of`)."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if getattr(model, "hf_quantizer", None) is not None:  # QLoRA: norms in fp32, inputs grad
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    save = list(lora.get("modules_to_save") or []) if task_type == "SEQ_CLS" else []
    config = LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=target_modules(lora, model),
        bias="none",
        task_type=task_type,
        modules_to_save=save or None,
    )
    peft = get_peft_model(model, config)
    if task_type == "CAUSAL_LM":
        return peft
    base = peft.get_base_model()
    object.__setattr__(base, _WRAPPER, peft)  # not a submodule: no cycle in state_dict
    return base


def peft_model_of(model: torch.nn.Module | None):
    """The `PeftModel` behind `model` (itself, or the wrapper of an unwrapped classifier)."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        return model
    return getattr(model, _WRAPPER, None)


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, all) parameter counts."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
