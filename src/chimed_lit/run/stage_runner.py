"""Running one stage: compose -> instantiate -> validate -> fit -> validate -> export.

Reads like a recipe: everything it builds comes from the config by `_target_`, and it writes
the stage's outputs under `<output_dir>/<stage>/`: `checkpoints/`, `hf/`, `summary.json`,
`config.yaml` and `initial_metrics.json`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from chimed_lit.io.atomic import write_json, write_text
from chimed_lit.io.errors import ConfigError
from chimed_lit.io.redaction import redact, redacted_yaml
from chimed_lit.models.export import export_hf
from chimed_lit.models.model_dirs import check_stage_models
from chimed_lit.plugins.full_weights import full_state_dict
from chimed_lit.run.preflight import check_runtime

log = logging.getLogger("chimed_lit")


def stage_dir(cfg: DictConfig) -> Path:
    return Path(cfg.paths.output_dir) / cfg.stage.name


def _loggers(cfg: DictConfig, stage: str, run_name: str, group: str | None) -> list[Any]:
    from hydra.utils import instantiate

    loggers = []
    for name, spec in (cfg.logger or {}).items():
        if spec is None:
            continue
        extra: dict[str, Any] = {}
        if str(spec.get("_target_", "")).endswith("wandb_logger"):
            import wandb

            if wandb.run is not None:  # WandbLogger would log into it: one run per stage
                log.warning("finishing the W&B run already in progress (%s)", wandb.run.name)
                wandb.finish()
            extra = {"name": run_name, "group": group, "job_type": stage}
        elif str(spec.get("_target_", "")).endswith("CSVLogger"):
            extra = {"name": f"{stage}/csv", "version": ""}
        logger = instantiate(spec, **extra)
        logger.log_hyperparams(redact(OmegaConf.to_container(cfg, resolve=True)))
        loggers.append(logger)
        log.info("logging to %s", name)
    return loggers


def _callbacks(cfg: DictConfig, sdir: Path) -> list[Any]:
    from hydra.utils import instantiate

    out = []
    for spec in (cfg.callbacks or {}).values():
        if spec is None:
            continue
        extra = {}
        if str(spec.get("_target_", "")).endswith(
            ("ModelCheckpoint", "FinalCheckpoint", "PreemptionCheckpoint", "NonFiniteGuard")
        ):
            extra = {"dirpath": str(sdir / "checkpoints")}
        out.append(instantiate(spec, **extra))
    return out


def build_models(cfg: DictConfig, factory: Any, upstream: dict[str, str]) -> tuple[Any, dict]:
    """The tokenizer and the models a stage's module takes, by `stage.model_kind`:
    `causal_lm` (pretrain, SFT), `reward` (a scalar head on the SFT backbone), `ppo` (actor,
    critic, frozen reference and reward model) or `dpo` (policy and frozen reference, none for
    reference-free losses). With `lora=on` the trained models get adapters (`lora.py`) and no
    separate reference is loaded: it is the policy with its adapters disabled."""
    from chimed_lit.models import lora

    kind = cfg.stage.get("model_kind", "causal_lm")
    needs = [n for n in (cfg.stage.get("needs") or []) if n in upstream]
    lora_cfg = cfg.get("lora")
    lora.check_quantize(lora_cfg)
    with_ref = not lora.lora_enabled(lora_cfg)

    # the trained models, in train mode: `from_pretrained` returns eval mode, which Lightning
    # keeps, and transformers checkpoints activations (model.gradient_checkpointing) only in
    # train mode; the frozen references are put in eval mode by their modules
    def causal_lm(tok: Any, source: str | None):
        if lora.quantization_kwargs(lora_cfg):
            return lora.load_quantized(factory, tok, source or factory.pretrained, lora_cfg).train()
        return factory.load_causal_lm(tok, pretrained=source).train()

    def reward_model(tok: Any, source: str | None):
        if lora.quantization_kwargs(lora_cfg):
            return lora.load_quantized(
                factory, tok, source or factory.pretrained, lora_cfg, classifier=True
            ).train()
        return factory.load_reward_model(tok, pretrained=source).train()

    if kind == "ppo":
        policy, reward = policy_and_reward(cfg, upstream, "the rlhf stage")
        tok = _tokenizer_from(factory, policy)
        models = {
            "actor": causal_lm(tok, policy),
            "ref": factory.load_causal_lm(tok, pretrained=policy) if with_ref else None,
            "critic": reward_model(tok, reward),
            "reward_model": (
                factory.load_reward_model(tok, pretrained=reward) if with_ref else None
            ),  # LoRA: the critic's base
            "tokenizer": tok,
        }
        return tok, lora.apply_lora(lora_cfg, kind, models)
    init_from = upstream[needs[0]] if needs else None
    tok = factory.load_tokenizer() if init_from is None else _tokenizer_from(factory, init_from)
    if kind == "reward":
        return tok, lora.apply_lora(lora_cfg, kind, {"model": reward_model(tok, init_from)})
    if kind == "dpo":
        if init_from is None and factory.pretrained is None:
            raise ConfigError(
                "the dpo stage starts from a policy: let the pipeline build the "
                "sft stage, or set model.pretrained=DIR"
            )
        from chimed_lit.modules.dpo import REFERENCE_FREE, check_dpo_config

        check_dpo_config(cfg.stage.module)
        reference_free = cfg.stage.module.get("loss_type") in REFERENCE_FREE
        models = {
            "model": causal_lm(tok, init_from),
            "ref": (
                factory.load_causal_lm(tok, init_from) if with_ref and not reference_free else None
            ),
        }
        return tok, lora.apply_lora(lora_cfg, kind, models)
    if kind != "causal_lm":
        raise ConfigError(f"stage.model_kind={kind!r}: use causal_lm, reward, ppo or dpo")
    return tok, lora.apply_lora(lora_cfg, kind, {"model": causal_lm(tok, init_from)})


def policy_and_reward(cfg: DictConfig, upstream: dict[str, str], who: str) -> tuple[str, str]:
    """RLHF's starting dirs: `stage.policy`/`stage.reward_model`, else the sft/reward stages'."""
    policy = cfg.stage.get("policy") or upstream.get("sft")
    reward = cfg.stage.get("reward_model") or upstream.get("reward")
    if not policy or not reward:
        raise ConfigError(
            f"{who} needs a policy and a reward model: set stage.policy=DIR and "
            "stage.reward_model=DIR, or let the pipeline build the sft and reward "
            "stages"
        )
    return str(policy), str(reward)


def run_stage(
    cfg: DictConfig,
    upstream: dict[str, str] | None = None,
    run_name: str | None = None,
    group: str | None = None,
    fingerprint: str | None = None,
) -> dict[str, Any]:
    """Train the stage `cfg.stage.name`; `upstream` maps the stages it starts from to their
    hf/ dirs."""
    import lightning as L
    from hydra.utils import instantiate

    from chimed_lit.callbacks.nonfinite import check_policy
    from chimed_lit.io.checkpoints import check_verify, checkpoint_plugins, find_resume_checkpoint
    from chimed_lit.models.packing_check import check_packing

    started = time.time()
    stage, sdir = cfg.stage.name, stage_dir(cfg)
    check_runtime(cfg)
    check_policy(cfg.get("on_nonfinite", "stop"))
    check_verify((cfg.get("checkpoint") or {}).get("verify", "full"))

    # 1. seed, tokenizer, models and data (bad data fails before training starts)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    factory = instantiate(cfg.model)
    check_stage_models(cfg, upstream or {})
    tokenizer, models = build_models(cfg, factory, upstream or {})
    datamodule = instantiate(cfg.data, tokenizer=tokenizer)
    datamodule.setup("fit")
    log.info("%s data: %s", stage, datamodule.stats)

    # 2. the LightningModule (packed data needs models that keep packed sequences apart)
    extra = check_packing(
        stage, models, bool(getattr(datamodule, "pack", False)), cfg.stage.get("module")
    )
    if cfg.get("scheduler"):
        extra["scheduler"] = instantiate(cfg.scheduler)
    if cfg.get("optimizer"):
        extra["optimizer"] = instantiate(cfg.optimizer)
    module = instantiate(cfg.stage.module, **models, **extra)

    # 3. trainer with the strategy, callbacks and loggers of the config
    sdir.mkdir(parents=True, exist_ok=True)
    write_text(sdir / "config.yaml", redacted_yaml(cfg))
    strategy = instantiate(cfg.strategy)
    trainer = instantiate(
        cfg.trainer,
        strategy=strategy,
        callbacks=_callbacks(cfg, sdir),
        plugins=checkpoint_plugins(strategy, stage, instantiate(cfg.trainer.get("plugins") or [])),
        logger=_loggers(cfg, stage, run_name or stage, group) or False,
        default_root_dir=str(sdir),
    )

    # 4. validation before training (kept across resumes), then fit
    verify = (cfg.get("checkpoint") or {}).get("verify", "full")
    ckpt = find_resume_checkpoint(sdir, stage, verify) if cfg.resume else None
    if cfg.resume and ckpt is None:
        log.warning("resume=true but no checkpoint under %s: starting from scratch", sdir)
    initial_file = sdir / "initial_metrics.json"
    if ckpt is None or not initial_file.is_file():
        initial = _metrics(trainer.validate(module, datamodule=datamodule, verbose=False))
        write_json(initial_file, initial)
    else:
        import json

        initial = json.loads(initial_file.read_text())
        log.info("resuming %s from %s", stage, ckpt)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
    train_loss = _scalar(trainer.callback_metrics.get(f"{stage}/train_loss"))
    final = _metrics(trainer.validate(module, datamodule=datamodule, verbose=False))

    # 5. export (plain transformers can load it) and the summary
    summary: dict[str, Any] = {
        "stage": stage,
        "global_step": trainer.global_step,
        "hf_dir": str(sdir / "hf"),
        "initial": initial,
        "final": final,
        "data": datamodule.stats,
        "train_loss": train_loss,
        "elapsed_s": round(time.time() - started, 1),
        "fingerprint": fingerprint,
    }
    weights = full_state_dict(trainer.strategy, module.model)  # ZeRO-3/FSDP2: a collective
    if trainer.is_global_zero:
        # LoRA: merged + hf_adapter/
        summary.update(export_hf(module.model, tokenizer, sdir, state_dict=weights))
        write_json(sdir / "summary.json", summary)
    for lg in trainer.loggers:
        if hasattr(lg, "experiment") and type(lg).__name__ == "WandbLogger":
            lg.experiment.finish()
    return summary


def _tokenizer_from(factory: Any, init_from: str):
    from dataclasses import replace

    return replace(factory, pretrained=init_from, tokenizer=None).load_tokenizer()


def _scalar(v: Any) -> float | None:
    return None if v is None else float(v)


def _metrics(results: list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in results or []:
        out.update({k: float(v) for k, v in r.items()})
    return out
