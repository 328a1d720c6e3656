"""Direct preference optimisation: the SFT policy trained on preference pairs against a frozen
copy of itself (none for the reference-free losses, none with LoRA: the policy with its adapters
off). Exports `dpo/hf/` as a plain causal LM."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from chimed_lit.io.errors import ConfigError
from chimed_lit.modules.dpo import REFERENCE_FREE, check_dpo_config
from chimed_lit.planning.setup import StageSetup, stage_setup
from chimed_lit.stages import Stage


class DPO(Stage):
    plan_kind = "dpo"

    def problems(self, cfg: DictConfig) -> list[str]:
        out = []
        try:
            check_dpo_config(cfg.stage.module)
        except ConfigError as e:
            out += e.problems
        if cfg.data.get("pack"):
            out.append(
                f"data.pack=true with stage={cfg.stage.name}: padding-free pair batches serve "
                "the reward model's scores; DPO reads per-token log-probs of padded rows "
                "(data.pack=false)"
            )
        return out

    def build_models(self, cfg: DictConfig, factory: Any, upstream: dict[str, str]) -> tuple:
        from chimed_lit.stages.loading import (
            causal_lm,
            tokenizer_for,
            with_adapters,
            with_reference,
        )

        init_from = self.start_from(cfg, upstream)
        if init_from is None and factory.pretrained is None:
            raise ConfigError(
                f"the {cfg.stage.name} stage starts from a policy: let the pipeline build the "
                "sft stage, or set model.pretrained=DIR"
            )
        tok = tokenizer_for(factory, init_from)
        reference_free = cfg.stage.module.get("loss_type") in REFERENCE_FREE
        models = {
            "model": causal_lm(cfg, factory, tok, init_from),
            "ref": (
                factory.load_causal_lm(tok, init_from)
                if with_reference(cfg) and not reference_free
                else None
            ),
        }
        return tok, with_adapters(cfg, models, self.lora_targets)

    def plan_setup(self, cfg: DictConfig) -> StageSetup:
        loss = str(cfg.stage.module.get("loss_type", "sigmoid"))
        return stage_setup(cfg, self.plan_kind, dpo_reference=loss not in REFERENCE_FREE)
