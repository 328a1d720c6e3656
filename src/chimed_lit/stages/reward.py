"""The pairwise reward model: a scalar head on the SFT backbone (or on a reward model's, to
continue one). Exports `reward/hf/` as `AutoModelForSequenceClassification` (num_labels=1)."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from chimed_lit.models.model_dirs import SCALAR, check_causal_lm
from chimed_lit.stages import Stage


class Reward(Stage):
    plan_kind = "reward"
    lora_targets = {"model": "SEQ_CLS"}

    def check_models(self, cfg: DictConfig, upstream: dict[str, str]) -> None:
        source = self.start_from(cfg, upstream) or cfg.model.get("pretrained")
        if source:  # a reward model may also continue from a reward model's dir
            check_causal_lm(str(source), "model.pretrained", also=(SCALAR,))

    def build_models(self, cfg: DictConfig, factory: Any, upstream: dict[str, str]) -> tuple:
        from chimed_lit.stages.loading import reward_model, tokenizer_for, with_adapters  # torch

        init_from = self.start_from(cfg, upstream)
        tok = tokenizer_for(factory, init_from)
        models = {"model": reward_model(cfg, factory, tok, init_from)}
        return tok, with_adapters(cfg, models, self.lora_targets)
