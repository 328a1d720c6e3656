"""The stage interface: what one stage of the regime (or one RL algorithm) declares, once.

A stage is a class in its own module here (`pretrain`, `sft`, `reward`, `dpo`, `ppo`,
`rejection_sampling`, or any importable module outside the package) selected by the `_target_`
of `stage.spec` in its `configs/stage/<name>.yaml`. The run layer (`chimed_lit.run`) reads it
through `run.registry.stage_of(cfg)`: which stages run first (`needs`), the stage's own
pre-flight checks (`problems`), the model directories it starts from (`check_models`), the
models it trains (`build_models`), how it runs (`run`: the shared Trainer.fit runner by
default, or a loop of its own) and what it exports (`export_model`). A stage never imports the
run layer: what it needs from it arrives in a `StageContext`.

Adding a stage: subclass `Stage`, override what differs, point a stage YAML's
`stage.spec._target_` at the class (`tests/architecture/test_external_stage.py` does it from
outside the package).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from chimed_lit.models.model_dirs import check_causal_lm
from chimed_lit.planning.setup import StageSetup, stage_setup

# a running stage's config: renamed to `config.yaml` once its `hf/` and `summary.json` are written,
# so a failed run never leaves a config.yaml that no longer describes them
RUNNING_CONFIG = "config.next.yaml"


def stage_dir(cfg: DictConfig) -> Path:
    """`<paths.output_dir>/<stage.name>/`: where a stage writes everything."""
    return Path(cfg.paths.output_dir) / cfg.stage.name


@dataclass(frozen=True)
class StageContext:
    """What the run layer hands a stage's `run`.

    `fit(cfg, upstream=..., run_name=..., fingerprint=...)` trains the stage `cfg` describes with
    the shared runner (instantiate -> Trainer.fit -> export) and returns its summary;
    `compose(name, output_dir)` is stage `name`'s config as this run composes it (its YAML, the
    run-wide overrides and its `<name>.key=value` ones), writing under `output_dir`."""

    fit: Callable[..., dict[str, Any]]
    compose: Callable[[str, str], DictConfig]
    upstream: dict[str, str] = field(default_factory=dict)
    run_name: str | None = None
    fingerprint: str | None = None


class Stage:
    """A stage that trains one causal LM with Trainer.fit, starting from the `hf/` of the first
    stage it needs (or `model.pretrained`): pre-training and SFT as they are. Subclasses
    override what differs."""

    # the planner's memory layout (`planning.stage_plan.roles`): causal_lm, reward, dpo, ppo or
    # rejection_sampling
    plan_kind = "causal_lm"
    # LoRA adapters go on these models (name in `build_models`' dict -> peft task type)
    lora_targets: dict[str, str] = {"model": "CAUSAL_LM"}

    def needs(self, cfg: DictConfig, pretrained_given: bool = False) -> list[str]:
        """Stages that run first. `model.pretrained` on the command line replaces the first."""
        needs = list(cfg.stage.get("needs") or [])
        return needs[1:] if pretrained_given else needs

    def problems(self, cfg: DictConfig) -> list[str]:
        """This stage's own pre-flight problems (the run-wide ones are `run.preflight`'s)."""
        return []

    def start_from(self, cfg: DictConfig, upstream: dict[str, str]) -> str | None:
        """The model dir training starts from: the first needed stage's `hf/`, else None
        (`model.pretrained`, or a fresh model)."""
        needs = [n for n in (cfg.stage.get("needs") or []) if n in upstream]
        return upstream[needs[0]] if needs else None

    def check_models(self, cfg: DictConfig, upstream: dict[str, str]) -> None:
        """Each model dir the stage starts from holds the model it needs (before any loads)."""
        source = self.start_from(cfg, upstream) or cfg.model.get("pretrained")
        if source:
            check_causal_lm(str(source), "model.pretrained")

    def build_models(self, cfg: DictConfig, factory: Any, upstream: dict[str, str]) -> tuple:
        """(tokenizer, {argument of `stage.module`: model}) in train mode, with LoRA adapters."""
        from chimed_lit.stages.loading import causal_lm, tokenizer_for, with_adapters  # torch

        init_from = self.start_from(cfg, upstream)
        tok = tokenizer_for(factory, init_from)
        models = {"model": causal_lm(cfg, factory, tok, init_from)}
        return tok, with_adapters(cfg, models, self.lora_targets)

    def inner_configs(
        self, cfg: DictConfig, compose: Callable[[str, str], DictConfig]
    ) -> list[tuple[str, DictConfig]]:
        """(label, config) of each stage this one builds and trains itself (rejection
        sampling's SFT rounds), as `run` will build it with `compose` (`StageContext.compose`):
        the preflight checks them with the planned stages. None by default."""
        return []

    def run(self, cfg: DictConfig, ctx: StageContext) -> dict[str, Any]:
        """Train and export; returns the summary (`summary.json`)."""
        return ctx.fit(
            cfg, upstream=ctx.upstream, run_name=ctx.run_name, fingerprint=ctx.fingerprint
        )

    def export_model(self, module: Any) -> Any:
        """The model written to `hf/` from the trained LightningModule."""
        return module.model

    def plan_setup(self, cfg: DictConfig) -> StageSetup:
        """The planner's reading of this stage's config (`chimed-lit plan`)."""
        module = cfg.stage.get("module") or {}
        return stage_setup(cfg, self.plan_kind, loss_chunk=int(module.get("loss_chunk") or 0))
