"""No credential lands in what a run writes: with a fake HF token and W&B key in the environment,
pulled into the config through `${oc.env:...}`, neither appears in any file of the run dir
(config.yaml, CSV hparams, W&B files, summary.json, checkpoints) nor in its console output."""

from __future__ import annotations

import pytest

from chimed_lit.io.redaction import REDACTED, redact, secret_key

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
    )
    assert r.code == 0, r.err[-3000:]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "config.yaml" for p in files) and any(p.suffix == ".wandb" for p in files)
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
