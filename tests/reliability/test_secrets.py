"""No credential lands in what a run writes: with a fake HF token and W&B key in the environment,
pulled into the config through `${oc.env:...}`, neither appears in any file of the run dir
(config.yaml, CSV hparams, W&B files, summary.json, checkpoints) nor in its console output.
A credential put into a logger's own fields (W&B entity, tags, notes ...), which W&B and
SwanLab store in clear, is refused (exit 2, naming the key) before W&B starts."""

from __future__ import annotations

import pytest

from chimed_lit.io.errors import ConfigError
from chimed_lit.io.redaction import REDACTED, credential_fields, redact, secret_key

HF = "hf_" + "Fake" * 9
WANDB = "f" * 8 + "0123456789abcdef" * 2


def test_a_run_writes_no_credential(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", HF)
    monkeypatch.setenv("WANDB_API_KEY", WANDB)
    monkeypatch.setenv("WANDB_MODE", "offline")  # a key and no network would make wandb.init wait
    r = run_cli(
        "fit",
        "logger=[csv,wandb]",
        "trainer.max_steps=2",
        "checkpoint.every_n_steps=1",
        "model.arch.num_hidden_layers=1",
        f"paths.output_dir={tmp_path}",
        "+paths.hub_token=${oc.env:HF_TOKEN}",
        "+paths.note=key:${oc.env:WANDB_API_KEY}",
        "logger.wandb.tags=[visible-tag]",
    )
    assert r.code == 0, r.err[-3000:]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "config.yaml" for p in files) and any(p.suffix == ".wandb" for p in files)
    # the files read below are the ones W&B writes its run's fields to
    assert any(b"visible-tag" in p.read_bytes() for p in files if p.suffix == ".wandb")
    for p in files:
        data = p.read_bytes()
        for secret in (HF, WANDB):
            assert secret.encode() not in data, (p, secret[:6])
    assert HF not in r.out + r.err and WANDB not in r.out + r.err
    saved = (tmp_path / "pretrain" / "config.yaml").read_text()
    assert f"hub_token: {REDACTED}" in saved and f"note: key:{REDACTED}" in saved


@pytest.mark.parametrize(
    "key, secret",
    [
        ("hub_token", True),
        ("token", True),
        ("api_key", True),
        ("WANDB_API_KEY", True),
        ("password", True),
        ("client_secret", True),
        ("eos_token", False),
        ("pad_token", False),
        ("max_new_tokens", False),
        ("tokenizer", False),
        ("train_tokens", False),
        ("n_tokens", False),
    ],
)
def test_which_keys_hold_credentials(key, secret):
    assert secret_key(key) is secret


def test_redact_keeps_everything_else(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", HF)
    cfg = {
        "model": {"pretrained": "Qwen/Qwen2.5-0.5B", "eos_token": "</s>", "token": "abc123"},
        "urls": [f"https://x/?t={HF}"],
        "lr": 3e-4,
        "tag": "hf_" + "Z" * 34,
    }
    assert redact(cfg) == {
        "model": {"pretrained": "Qwen/Qwen2.5-0.5B", "eos_token": "</s>", "token": REDACTED},
        "urls": [f"https://x/?t={REDACTED}"],
        "lr": 3e-4,
        "tag": REDACTED,
    }


@pytest.mark.parametrize(
    "override, key",
    [
        ("logger.wandb.entity=${oc.env:WANDB_API_KEY}", "logger.wandb.entity"),
        ("logger.wandb.tags=[ok,'${oc.env:HF_TOKEN}']", "logger.wandb.tags[1]"),
        ("+logger.wandb.notes=" + "hf_" + "Q" * 34, "logger.wandb.notes"),
    ],
    ids=["entity-from-oc.env", "tag-from-oc.env", "token-shaped-notes"],
)
def test_a_credential_in_a_wandb_field_is_refused(run_cli, tmp_path, monkeypatch, override, key):
    monkeypatch.setenv("HF_TOKEN", HF)
    monkeypatch.setenv("WANDB_API_KEY", WANDB)
    monkeypatch.setenv("WANDB_MODE", "offline")
    r = run_cli(
        "fit",
        "logger=[csv,wandb]",
        "trainer.max_steps=1",
        "model.arch.num_hidden_layers=1",
        f"paths.output_dir={tmp_path}",
        override,
    )
    assert r.code == 2, r.err[-3000:]
    assert f"{key} " in r.err and "must not carry a credential" in r.err
    assert "Traceback" not in r.err
    assert not list(tmp_path.rglob("*.wandb")) and not (tmp_path / "pretrain").exists()
    for p in (p for p in tmp_path.rglob("*") if p.is_file()):
        assert HF.encode() not in p.read_bytes() and WANDB.encode() not in p.read_bytes(), p
    assert HF not in r.out + r.err and WANDB not in r.out + r.err


def test_the_runner_refuses_before_the_real_wandb_logger_starts(tmp_path, monkeypatch):
    """The stage runner checks each stage's logger specs too (what `run_stage` builds from)."""
    from omegaconf import OmegaConf

    from chimed_lit.run.stage_runner import _loggers

    monkeypatch.setenv("WANDB_API_KEY", WANDB)
    monkeypatch.setenv("WANDB_MODE", "offline")
    spec = {
        "_target_": "chimed_lit.io.loggers.wandb_logger",
        "save_dir": str(tmp_path),
        "entity": "${oc.env:WANDB_API_KEY}",
    }
    cfg = OmegaConf.create({"logger": {"wandb": spec}, "x": 1})
    with pytest.raises(
        ConfigError, match=r"logger\.wandb\.entity takes \$\{oc\.env:WANDB_API_KEY\}"
    ):
        _loggers(cfg, "pretrain", "pretrain", None)
    assert not (tmp_path / "wandb").exists()


def test_which_logger_fields_carry_a_credential(monkeypatch):
    from omegaconf import OmegaConf

    monkeypatch.setenv("WANDB_API_KEY", WANDB)
    monkeypatch.delenv("MY_SERVICE_TOKEN", raising=False)
    spec = OmegaConf.create(
        {
            "_target_": "x.Logger",
            "project": "chimed-lit",
            "entity": "my-team",
            "tags": ["sft", "${oc.env:MY_SERVICE_TOKEN,unset}"],  # named like a secret
            "notes": "run by ${oc.env:USER,me}",  # not a secret variable
            "group": WANDB,  # equal to a credential in the environment
            "api_key": "abc",  # a credential-like key
            "pad_token": "<pad>",
        }
    )
    assert credential_fields(spec) == {
        "tags[1]": "takes ${oc.env:MY_SERVICE_TOKEN}",
        "group": "holds a credential (a secret from the environment, or a token)",
        "api_key": "is under a credential-like key",
    }


def test_eval_refuses_a_credential_in_its_wandb_logger(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", WANDB)
    monkeypatch.setenv("WANDB_MODE", "offline")
    r = run_cli(
        "eval",
        "task=bias",
        "logger=wandb",
        "logger.wandb.entity=${oc.env:WANDB_API_KEY}",
        f"paths.output_dir={tmp_path}",
    )
    assert r.code == 2, r.err[-3000:]
    assert "logger.wandb.entity takes ${oc.env:WANDB_API_KEY}" in r.err
    assert WANDB not in r.out + r.err and not list(tmp_path.rglob("*.wandb"))
