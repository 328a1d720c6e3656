"""Logger builders: W&B offline unless the user has configured it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def wandb_configured() -> bool:
    """True when W&B could reach a server: an API key in the environment or a `wandb login`."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", "~/.netrc")).expanduser()
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def wandb_mode(mode: str = "auto") -> str:
    """`auto` follows WANDB_MODE if set, else online only when configured (no hanging offline)."""
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE")
    if env in ("online", "offline", "disabled", "dryrun"):
        return "offline" if env == "dryrun" else env
    return "online" if wandb_configured() else "offline"


def wandb_logger(
    project: str = "chimed-lit",
    save_dir: str = ".",
    mode: str = "auto",
    entity: str | None = None,
    tags: list[str] | None = None,
    **kwargs: Any,
):
    """Lightning's WandbLogger; `save_dir` is passed explicitly (its default '.' would win over
    WANDB_DIR). The runner adds `name`, `group` and `job_type` per stage and sweep job."""
    from lightning.pytorch.loggers import WandbLogger

    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return WandbLogger(
        project=project,
        save_dir=save_dir,
        entity=entity,
        tags=list(tags or []),
        mode=wandb_mode(mode),
        **kwargs,
    )
