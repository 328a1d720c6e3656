"""Models loaded from a saved dir train in train mode, so `model.gradient_checkpointing=true`
recomputes each decoder layer in the backward (transformers checkpoints only in train mode, and
`from_pretrained` returns eval mode, which Lightning keeps)."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch

from chimed_lit.models.factory import ModelFactory

ARCH = {
    "hidden_size": 128,
    "intermediate_size": 352,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
}  # layers outweigh the logits


class SavedActivations(L.Callback):
    """Per training batch: the module's mode and the bytes autograd saved for the backward
    outside checkpointed regions (a checkpointed layer keeps only its input)."""

    def __init__(self, path: str):
        self.path, self.rows, self.ctx, self.saved = path, [], None, 0

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        self.saved += t.numel() * t.element_size()
        return t

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.saved = 0
        self.ctx = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self.ctx.__enter__()

    def on_before_backward(self, trainer, pl_module, loss):
        self.ctx.__exit__(None, None, None)
        self.rows.append({"training": pl_module.model.training, "saved": self.saved})
        Path(self.path).write_text(json.dumps(self.rows))


@pytest.fixture
def saved_model(tmp_path, demo_tok) -> Path:
    torch.manual_seed(0)
    out = tmp_path / "sft_init"
    ModelFactory(arch=ARCH).load_causal_lm(demo_tok).save_pretrained(out)
    demo_tok.save_pretrained(out)
    return out


def test_loaded_model_trains_in_train_mode_and_checkpoints(run_cli, tmp_path, saved_model):
    saved = {}
    for checkpointing in (False, True):
        record = tmp_path / f"saved_{checkpointing}.json"
        r = run_cli(
            "fit",
            "stage=sft",
            "stage.needs=[]",
            f"model.pretrained={saved_model}",
            f"model.gradient_checkpointing={str(checkpointing).lower()}",
            f"paths.output_dir={tmp_path / str(checkpointing)}",
            "logger=csv",
            "trainer.max_steps=2",
            "trainer.val_check_interval=2",
            "data.batch_size=2",
            "+callbacks.saved._target_=tests.foundation.test_training_mode.SavedActivations",
            f"+callbacks.saved.path={record}",
        )
        assert r.code == 0, r.err[-2000:]
        rows = json.loads(record.read_text())
        assert [row["training"] for row in rows] == [True, True]
        saved[checkpointing] = rows[0]["saved"]
    # without checkpointing every layer's activations are kept; with it, little besides the
    # logits and each layer's input (measured: 40%)
    assert saved[True] < 0.6 * saved[False], saved
