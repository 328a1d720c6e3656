"""Checks on a composed config that need more than its shape: impossible combinations."""

from __future__ import annotations

from omegaconf import DictConfig

from chimed_lit.errors import ConfigError


def _on_cpu(accelerator: str) -> bool:
    if accelerator == "cpu":
        return True
    if accelerator in ("auto", None):
        import torch

        return not torch.cuda.is_available()
    return False


def check_runtime(cfg: DictConfig) -> None:
    """Fail before building anything when the combination cannot run here."""
    problems = []
    precision = str(cfg.trainer.get("precision", "32-true"))
    if _on_cpu(cfg.trainer.get("accelerator", "auto")) and precision.startswith("16"):
        problems.append(f"trainer.precision={precision} on a CPU: fp16 is not supported there "
                        "(use 32-true, or bf16-mixed on CPUs with bf16 support)")
    if cfg.model.get("dtype") in ("float16", "fp16") and _on_cpu(cfg.trainer.get("accelerator")):
        problems.append("model.dtype=float16 on a CPU: use float32 or bfloat16")
    if problems:
        raise ConfigError(problems)
