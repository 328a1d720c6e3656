"""Checks on a composed config that need more than its shape: impossible combinations."""

from __future__ import annotations

from omegaconf import DictConfig

from chimed_lit.io.errors import ConfigError


def _on_cpu(accelerator: str) -> bool:
    if accelerator == "cpu":
        return True
    if accelerator in ("auto", None):
        import torch

        return not torch.cuda.is_available()
    return False


def check_runtime(cfg: DictConfig) -> None:
    """Fail before building anything when the combination cannot run here."""
    from omegaconf import OmegaConf

    problems = [
        f"{k} is required for the {cfg.stage.name} stage (the config leaves it ???); set {k}=..."
        for k in sorted(OmegaConf.missing_keys(cfg))
    ]
    precision = str(cfg.trainer.get("precision", "32-true"))
    if _on_cpu(cfg.trainer.get("accelerator", "auto")) and precision.startswith("16"):
        problems.append(
            f"trainer.precision={precision} on a CPU: fp16 is not supported there "
            "(use 32-true, or bf16-mixed on CPUs with bf16 support)"
        )
    if cfg.model.get("dtype") in ("float16", "fp16") and _on_cpu(cfg.trainer.get("accelerator")):
        problems.append("model.dtype=float16 on a CPU: use float32 or bfloat16")
    if cfg.stage.name == "dpo" and cfg.data.get("pack"):
        problems.append(
            "data.pack=true with stage=dpo: padding-free pair batches serve the reward "
            "model's scores; DPO reads per-token log-probs of padded rows (data.pack=false)"
        )
    problems += _strategy_problems(cfg)
    if problems:
        raise ConfigError(problems)


def _strategy_problems(cfg: DictConfig) -> list[str]:
    """Combinations of `strategy=` with the stage and the trainer that cannot work."""
    strategy = cfg.get("strategy") or {}
    target = str(strategy.get("_target_", ""))
    name = target.rsplit(".", 1)[-1]
    out = []
    if name == "deepspeed":
        stage = strategy.get("zero_stage")
        if stage not in (1, 2, 3):
            out.append(f"strategy.zero_stage={stage}: DeepSpeed ZeRO stages are 1, 2 and 3")
        elif strategy.get("offload_parameters") and stage != 3:
            out.append(
                "strategy.offload_parameters=true needs strategy.zero_stage=3 "
                "(use strategy=deepspeed_zero3_offload)"
            )
        if cfg.trainer.get("gradient_clip_algorithm", "norm") != "norm":
            out.append("trainer.gradient_clip_algorithm=value: DeepSpeed clips by norm only")
    ppo = (
        cfg.stage.get("model_kind") == "ppo"
        and cfg.stage.get("algorithm", "ppo") != "rejection_sampling"
    )
    if name == "deepspeed" and ppo:
        out.append(
            "strategy=deepspeed_* with stage=rlhf: PPO steps two optimizers (actor and "
            "critic) itself, which Lightning's DeepSpeed strategy does not support; keep "
            "DeepSpeed for the other stages and add rlhf.strategy=fsdp2 (every PPO model "
            "sharded, the actor gathered once per rollout) or rlhf.strategy=ddp, or use "
            "stage.algorithm=rejection_sampling"
        )
    return out
