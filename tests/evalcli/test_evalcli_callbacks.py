"""`BiasScaleCallback` and `EvalTasksCallback` inside a real `L.Trainer.fit` of a tiny model."""

from __future__ import annotations

import csv
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch


class TrainModeProbe(L.Callback):
    """Records whether the HF model is in train mode at the start of every batch."""

    def __init__(self) -> None:
        self.modes: list[bool] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.modes.append(pl_module.model.training)


def _tiny_module(tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    from chimed_lit.modules.causal_lm import CausalLMModule

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CausalLMModule(
        LlamaForCausalLM(config), optimizer=partial(torch.optim.AdamW, lr=1e-3), stage="sft"
    )


def _metrics(log_dir: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((log_dir / "metrics.csv").open(encoding="utf-8")))


def test_callbacks_log_scores_and_plot_during_fit(demo_tok, tmp_path, shared_file):
    from lightning.pytorch.loggers import CSVLogger, WandbLogger

    from chimed_lit.callbacks.bias_scale import BiasScaleCallback
    from chimed_lit.callbacks.eval_tasks import EvalTasksCallback
    from chimed_lit.data.pretrain import PretrainDataModule

    mcq = shared_file("mcq/cmmlu_medical_test.csv")
    dm = PretrainDataModule(
        tokenizer=demo_tok,
        train_files=None,
        batch_size=2,
        max_length=64,
        cache_dir=str(tmp_path / "cache"),
    )
    bias = BiasScaleCallback(
        every_n_steps=2, dirpath=str(tmp_path / "plots"), limit=4, drift_alarm=None
    )
    tasks = EvalTasksCallback("mcq", files=[mcq], every_n_steps=2, limit=3)
    probe = TrainModeProbe()
    csv_logger = CSVLogger(tmp_path, name="csv", version=0)
    wandb_logger = WandbLogger(project="evalcli-test", save_dir=str(tmp_path), offline=True)
    trainer = L.Trainer(
        max_steps=4,
        accelerator="cpu",
        logger=[csv_logger, wandb_logger],
        callbacks=[bias, tasks, probe],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        log_every_n_steps=1,
        default_root_dir=tmp_path,
    )
    trainer.fit(_tiny_module(demo_tok), datamodule=dm)

    # the start (the drift baseline), every 2 steps; the end (step 4) is not scored twice
    assert sorted(bias.history) == [0, 2, 4]
    assert sorted(tasks.history) == [2, 4]
    assert probe.modes == [True] * 4  # scoring put the model back in train mode
    rows = _metrics(Path(csv_logger.log_dir))
    scored = [r for r in rows if r.get("bias/bias_score")]
    assert [int(r["step"]) for r in scored] == [0, 2, 4]
    assert all(1.0 <= float(r["bias/bias_score"]) <= 5.0 for r in scored)
    assert all(r.get("bias/subscale/能力偏见") for r in scored)  # per-subscale scalars
    start = float(scored[0]["bias/bias_score_normalized"])
    assert [r["bias/drift"] for r in scored][0] == ""  # the baseline has no drift
    for r in scored[1:]:
        now = float(r["bias/bias_score_normalized"])
        assert float(r["bias/drift"]) == pytest.approx(now - start)
    assert not any(r.get("bias/drift_alarm") for r in rows)  # drift_alarm=None: no alarm
    acc = [float(r["eval/mcq_accuracy"]) for r in rows if r.get("eval/mcq_accuracy")]
    assert len(acc) == 2 and all(0.0 <= a <= 1.0 for a in acc)
    png = tmp_path / "plots" / "bias_scale.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tables = list(
        Path(tmp_path / "wandb").glob("offline-run-*/files/media/table/bias/*.table.json")
    )
    assert tables, "the W&B table was not logged"


def test_callbacks_refuse_bad_settings(tmp_path):
    from chimed_lit.callbacks.eval_tasks import EvalTasksCallback
    from chimed_lit.io.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        EvalTasksCallback("ner", files=[str(tmp_path / "missing.json")], every_n_steps=-1)
    text = str(err.value)
    assert "no such file" in text and "every_n_steps=-1" in text
    with pytest.raises(ConfigError, match="needs files"):
        EvalTasksCallback("dialogue")
