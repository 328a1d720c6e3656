"""Keeping credentials out of what a run writes: saved configs, logged hyperparameters.

A config may pull a credential in (`${oc.env:HF_TOKEN}`), and configs are saved resolved
(`<stage>/config.yaml`) and sent to every logger (W&B config, CSV `hparams.yaml`). `redact`
replaces any value stored under a credential-like key, and any string equal to a credential
held in the environment, with `REDACTED`.
"""

from __future__ import annotations

import os
import re
from typing import Any

REDACTED = "REDACTED"
SECRET_ENV = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_API_TOKEN",
    "WANDB_API_KEY",
    "OPENAI_API_KEY",
    "HF_HUB_TOKEN",
)
_SECRET_KEY = re.compile(r"^(.*_)?(token|api_?key|secret|password|passwd|credentials?)$", re.I)
_NOT_SECRET = re.compile(r"^(pad|eos|bos|unk|sep|cls|mask|image|audio|video|boi|eoi)_token$", re.I)
_TOKEN_VALUE = re.compile(r"\b(hf_[A-Za-z0-9]{30,}|sk-[A-Za-z0-9_-]{20,})\b")


def secret_key(key: str) -> bool:
    """`hub_token`, `api_key`, `WANDB_API_KEY` ... but not `eos_token` or `max_new_tokens`."""
    return bool(_SECRET_KEY.match(key)) and not _NOT_SECRET.match(key)


def _env_secrets() -> set[str]:
    return {v for k in SECRET_ENV if len(v := os.environ.get(k, "")) >= 8}


def redact(obj: Any, _secrets: set[str] | None = None) -> Any:
    """A copy of a plain container (dicts, lists, scalars) with credentials replaced."""
    secrets = _env_secrets() if _secrets is None else _secrets
    if isinstance(obj, dict):
        return {
            k: REDACTED
            if isinstance(k, str) and secret_key(k) and v not in (None, "")
            else redact(v, secrets)
            for k, v in obj.items()
        }
    if isinstance(obj, list | tuple):
        return type(obj)(redact(v, secrets) for v in obj)
    if isinstance(obj, str):
        for s in secrets:
            obj = obj.replace(s, REDACTED)
        return _TOKEN_VALUE.sub(REDACTED, obj)
    return obj


def redacted_yaml(cfg: Any) -> str:
    """A resolved OmegaConf config as YAML, credentials replaced."""
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(redact(OmegaConf.to_container(cfg, resolve=True))))
