"""Do the stage's models keep packed sequences apart? Checked once before training.

Packed batches (pre-training, `data.pack=true`, padding-free reward pairs, PPO's padding-free
rollouts) rely on the model reading restarting position ids as sequence boundaries, as
transformers' LLaMA-family code does (block-diagonal mask, or per-document / varlen kernels).
A model whose attention ignores position ids, such as ALiBi models (BLOOM, Baichuan2-13B's remote
code), would silently let each sequence attend to the ones packed before it. The probe packs a
short sequence behind two different first sequences and compares its last hidden states;
model types known to keep sequences apart are not probed.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from chimed_lit.io.errors import ConfigError

log = logging.getLogger("chimed_lit")


def _hidden(model: torch.nn.Module, ids: list[int], positions: list[int]) -> torch.Tensor:
    device = next(model.parameters()).device
    out = model(
        input_ids=torch.tensor([ids], device=device),
        position_ids=torch.tensor([positions], device=device),
        use_cache=False,
        output_hidden_states=True,
    )
    return out.hidden_states[-1][0]


# relative change of the second sequence's states between the two packings that is still float
# rounding (MoE layers group tokens by expert, so matmul batching differs: ~1e-7 in fp32); a
# leak is orders larger (a random-init BLOOM: 1% in fp32 and bf16)
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-9}
HALF_TOLERANCE = 5e-3

# transformers model types whose attention reads restarting position ids as sequence boundaries
# (each verified by the probe in tests/foundation/test_packing_check.py): not probed, so a 13B
# model does not pay two CPU forwards before training
KNOWN_TO_KEEP_APART = frozenset(
    {
        "llama",
        "qwen2",
        "qwen3",
        "mistral",
        "mixtral",
        "qwen2_moe",
        "gemma",
        "gemma2",
        "olmo2",
        "granite",
        "cohere",
    }
)


def keeps_sequences_apart(model: torch.nn.Module) -> bool:
    """True when the hidden states of a packed sequence do not depend on the sequence packed
    before it: two packings that differ only in that first sequence must give the second one
    the same states up to float rounding. False when they differ more, or when the model takes
    no position ids."""
    config = model.config
    pad = getattr(config, "pad_token_id", None)
    tokens = [t for t in range(3, config.vocab_size) if t != pad]
    second = tokens[:4]
    first_a, first_b = tokens[4:7], tokens[-3:]
    positions = [0, 1, 2, 0, 1, 2, 3]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            a = _hidden(model, first_a + second, positions)[3:].float()
            b = _hidden(model, first_b + second, positions)[3:].float()
    except (TypeError, ValueError):  # no `position_ids` (or no such call): no boundaries seen
        return False
    finally:
        model.train(was_training)
    tol = TOLERANCE.get(next(model.parameters()).dtype, HALF_TOLERANCE)
    return bool((a - b).abs().max() <= tol * a.abs().max())


def leaky_models(models: dict[str, Any]) -> list[str]:
    """Names of the models (skipping None and models not materialised yet) that let packed
    sequences see each other; each architecture and attention setting is probed once."""
    seen: dict[tuple[str, str], bool] = {}
    leaky = []
    for name, model in models.items():
        if not isinstance(model, torch.nn.Module) or not hasattr(model, "config"):
            continue
        if getattr(model.config, "model_type", None) in KNOWN_TO_KEEP_APART:
            continue
        if any(p.is_meta for p in model.parameters()):
            continue
        key = (type(model).__name__, str(getattr(model.config, "_attn_implementation", "")))
        if key not in seen:
            seen[key] = keeps_sequences_apart(model)
        if not seen[key]:
            leaky.append(name)
    return leaky


def check_packing(
    stage: str, models: dict[str, Any], data_packs: bool, module_cfg: Any = None
) -> dict[str, Any]:
    """Before training: packed data with a model that mixes packed sequences is a config error
    (the fix: `data.pack=false`); PPO's padding-free rollouts fall back to padded rows, which
    compute the same thing. Returns overrides for the module's arguments."""
    padding_free = bool(module_cfg is not None and module_cfg.get("padding_free", False))
    if not data_packs and not padding_free:
        return {}
    leaky = leaky_models(models)
    if not leaky:
        return {}
    what = (
        f"{', '.join(leaky)} ({type(models[leaky[0]]).__name__}) attends across packed "
        "sequences: its attention does not read restarting position ids as boundaries "
        "(ALiBi models such as BLOOM or Baichuan2 do this)"
    )
    if data_packs:
        raise ConfigError(f"stage {stage}: {what}; set data.pack=false to train it on padded rows")
    log.warning(
        "stage %s: %s; PPO reads its rollouts as padded rows (stage.module.padding_free=false)",
        stage,
        what,
    )
    return {"padding_free": False}
