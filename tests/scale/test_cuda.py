"""GPU paths (marked `cuda`, skipped without a CUDA device): bf16 with ZeRO-2 and FSDP2.

No GPU was lent to the session that wrote these; docs/multinode.md records what has been run."""

from __future__ import annotations

import pytest
import torch

from tests.scale.conftest import SFT_SHORT, run_fit, summary

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.mark.parametrize("strategy", ["deepspeed_zero2", "deepspeed_zero3", "fsdp2"])
def test_bf16_sft_on_gpu_lowers_the_loss(tmp_path, tiny_base, strategy):
    out = tmp_path / strategy
    run_fit(
        out,
        *SFT_SHORT,
        f"model.pretrained={tiny_base}",
        f"strategy={strategy}",
        "trainer.accelerator=gpu",
        "trainer.devices=1",
        "trainer.precision=bf16-mixed",
        "logger=csv",
    )
    s = summary(out)
    assert s["global_step"] == 8
    assert s["final"]["sft/val_loss"] < s["initial"]["sft/val_loss"] - 0.3
