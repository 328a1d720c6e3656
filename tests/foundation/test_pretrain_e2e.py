"""Continued pre-training end to end on the tiny default: it learns, exports, logs and sweeps."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from tests.conftest import shared


@pytest.fixture(scope="module")
def default_run(regime):
    """The shared regime run: its pretrain stage ran with the defaults."""
    return regime


def test_perplexity_falls_30_percent(default_run):
    s = json.loads((default_run / "pretrain" / "summary.json").read_text())
    before, after = s["initial"]["pretrain/val_ppl"], s["final"]["pretrain/val_ppl"]
    assert after <= 0.7 * before, (before, after)
    assert s["global_step"] == 120
    assert s["data"]["train_records"] > 200 and s["data"]["val_records"] > 30


def test_outputs_written(default_run):
    sdir = default_run / "pretrain"
    for rel in (
        "checkpoints/last.ckpt",
        "hf/config.json",
        "hf/model.safetensors",
        "hf/tokenizer.json",
        "summary.json",
        "config.yaml",
        "stage.json",
    ):
        assert (sdir / rel).is_file(), rel
    assert "[human]:" in (sdir / "hf" / "chat_template.jinja").read_text()
    assert not list(sdir.glob(".*tmp*"))  # no half-written leftovers


def test_metric_names_namespaced(default_run):
    rows = list(csv.DictReader((default_run / "pretrain" / "csv" / "metrics.csv").open()))
    columns = set(rows[0])
    for name in (
        "pretrain/train_loss",
        "pretrain/val_loss",
        "pretrain/val_ppl",
        "pretrain/tokens_per_sec",
        "pretrain/lr",
    ):
        assert name in columns, columns
    tps = [float(r["pretrain/tokens_per_sec"]) for r in rows if r.get("pretrain/tokens_per_sec")]
    assert tps and min(tps) > 0


def test_wandb_offline_run_written(default_run):
    runs = list((default_run / "wandb").glob("offline-run-*"))
    assert len(runs) == len(list(default_run.glob("*/summary.json")))  # one W&B run per stage
    assert all(list(r.glob("*.wandb")) for r in runs)


def test_hf_export_reloads_with_plain_transformers_same_loss(default_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from chimed_lit.data.pretrain import PretrainDataModule
    from chimed_lit.models.factory import ModelFactory
    from chimed_lit.modules.causal_lm import CausalLMModule

    hf = default_run / "pretrain" / "hf"
    tok = AutoTokenizer.from_pretrained(hf)
    plain = AutoModelForCausalLM.from_pretrained(hf).eval()
    dm = PretrainDataModule(tokenizer=tok, train_files=None, batch_size=4)
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))

    factory = ModelFactory(pretrained=str(hf))
    module = CausalLMModule(model=factory.load_causal_lm(tok), optimizer=torch.optim.AdamW)
    ckpt = torch.load(default_run / "pretrain" / "checkpoints" / "last.ckpt", weights_only=True)
    module.load_state_dict(ckpt["state_dict"])
    module.eval()
    from chimed_lit.losses.causal_lm import causal_lm_loss

    with torch.no_grad():
        ours, _ = causal_lm_loss(module(batch), batch["labels"])
        # use_cache=False as in training: with a cache transformers skips the packed-sequence
        # mask and documents of a block would attend to each other
        theirs = plain(
            input_ids=batch["input_ids"],
            position_ids=batch["position_ids"],
            labels=batch["labels"],
            use_cache=False,
        ).loss
    assert torch.allclose(ours, theirs, atol=1e-5), (ours, theirs)


def test_pretrain_on_real_textbook_lowers_val_loss(run_cli, tmp_path):
    text = shared("pretrain/medicalgpt_fever_textbook.txt")
    r = run_cli(
        "fit",
        "logger=csv",
        f"paths.output_dir={tmp_path}",
        f"data.train_files=[{text}]",
        "trainer.max_steps=30",
        "trainer.val_check_interval=30",
    )
    assert r.code == 0, r.err[-3000:]
    s = json.loads((tmp_path / "pretrain" / "summary.json").read_text())
    assert s["data"]["train_records"] > 500  # 690 non-empty lines, 10% held out
    assert s["final"]["pretrain/val_loss"] < s["initial"]["pretrain/val_loss"] - 0.5


def test_two_value_multirun_writes_two_runs_and_a_summary(run_cli, tmp_path):
    r = run_cli(
        "fit",
        "-m",
        "logger=[csv,wandb]",
        f"paths.output_dir={tmp_path}",
        "trainer.max_steps=4",
        "trainer.val_check_interval=4",
        "optimizer.lr=1e-3,3e-3",
    )
    assert r.code == 0, r.err[-3000:]
    sweeps = list((tmp_path / "sweeps").iterdir())
    assert len(sweeps) == 1
    jobs = sorted(p for p in sweeps[0].iterdir() if p.is_dir() and p.name.isdigit())
    assert [j.name for j in jobs] == ["0", "1"]
    for j in jobs:
        assert (j / "pretrain" / "summary.json").is_file()
        assert len(list((j / "wandb").glob("offline-run-*"))) == 1  # one W&B run per job
    rows = list(csv.DictReader((sweeps[0] / "sweep_summary.csv").open()))
    assert [r["overrides"] for r in rows] == ["optimizer.lr=0.001", "optimizer.lr=0.003"]
    assert all(float(r["val_loss"]) < float(r["initial_val_loss"]) for r in rows)
    assert Path(rows[0]["output_dir"]) == jobs[0]
