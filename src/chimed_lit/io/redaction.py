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


_ENV_REF = re.compile(r"\$\{\s*oc\.env\s*:\s*([A-Za-z_][A-Za-z0-9_]*)")


def secret_env_name(name: str) -> bool:
    """An environment variable that holds a credential: a known one (`SECRET_ENV`) or one named
    like one (`MY_SERVICE_TOKEN`, `DB_PASSWORD`)."""
    return name in SECRET_ENV or secret_key(name)


def _leaves(obj: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(obj, dict):
        return [
            leaf
            for k, v in obj.items()
            if k != "_target_"
            for leaf in _leaves(v, f"{path}.{k}" if path else str(k))
        ]
    if isinstance(obj, list | tuple):
        return [leaf for i, v in enumerate(obj) for leaf in _leaves(v, f"{path}[{i}]")]
    return [(path, obj)]


def credential_fields(spec: Any) -> dict[str, str]:
    """Fields of a config node (a logger's init arguments) that would carry a credential, each
    with why: an `${oc.env:...}` of a secret variable (read unresolved, so it counts even when
    the variable is unset or short), a value equal to a credential in the environment or shaped
    like a token (`hf_...`, `sk-...`), or a non-empty value under a credential-like key."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    node = isinstance(spec, DictConfig | ListConfig)
    raw = OmegaConf.to_container(spec, resolve=False) if node else spec
    found: dict[str, str] = {}
    for path, value in _leaves(raw):
        names = (
            [n for n in _ENV_REF.findall(value) if secret_env_name(n)]
            if isinstance(value, str)
            else []
        )
        if names:
            found[path] = f"takes ${{oc.env:{names[0]}}}"
    try:
        resolved = OmegaConf.to_container(spec, resolve=True) if node else spec
    except Exception:  # noqa: BLE001 (an unset variable: the unresolved reading above stands)
        resolved = {}
    secrets = _env_secrets()
    for path, value in _leaves(resolved):
        if path in found or value in (None, ""):
            continue
        key = path.rsplit(".", 1)[-1].split("[", 1)[0]
        if secret_key(key):
            found[path] = "is under a credential-like key"
        elif isinstance(value, str) and redact(value, secrets) != value:
            found[path] = "holds a credential (a secret from the environment, or a token)"
    return found


def credential_problems(spec: Any, where: str) -> list[str]:
    """One sentence per field of a logger spec (at config path `where`) that would carry a
    credential. W&B and SwanLab keep their init arguments (entity, project, name, tags, notes,
    config ...) in clear, in their local run files and on their servers, where `redact` cannot
    reach."""
    return [
        f"{where}.{path} {why}: a logger's fields are stored in clear (run files, the server), "
        "so they must not carry a credential; remove it (W&B reads its key from WANDB_API_KEY "
        "or `wandb login` by itself)"
        for path, why in credential_fields(spec).items()
    ]


def refuse_credentials(spec: Any, where: str) -> None:
    """Raise `ConfigError` with `credential_problems`, if any."""
    problems = credential_problems(spec, where)
    if problems:
        from chimed_lit.io.errors import ConfigError

        raise ConfigError(problems)
