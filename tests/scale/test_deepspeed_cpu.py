"""A real DeepSpeed ZeRO-2 and ZeRO-3 run of a few SFT steps on CPU, through our plugin."""

from __future__ import annotations

import json

import pytest
import torch

from tests.scale.conftest import SFT_SHORT, hf_weights, run_fit, summary


@pytest.mark.slow
@pytest.mark.parametrize("zero", [2, 3])
def test_deepspeed_sft_lowers_the_loss_and_its_checkpoint_reloads(tmp_path, tiny_base, zero):
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    out = tmp_path / f"zero{zero}"
    run_fit(
        out,
        *SFT_SHORT,
        f"model.pretrained={tiny_base}",
        f"strategy=deepspeed_zero{zero}",
        "logger=csv",
    )
    s = summary(out)
    assert s["global_step"] == 8
    assert s["final"]["sft/val_loss"] < s["initial"]["sft/val_loss"] - 0.3

    # the JSON DeepSpeed ran with is the one derived from our config
    ran = json.loads((out / "sft" / "deepspeed_config.json").read_text())
    assert ran["zero_optimization"]["stage"] == zero
    assert ran["train_micro_batch_size_per_gpu"] == 4
    assert ran["gradient_accumulation_steps"] == 1 and ran["gradient_clipping"] == 1.0

    # the ZeRO checkpoint (a folder of shards) reloads, and holds the weights exported to hf/
    ckpt = out / "sft" / "checkpoints" / "last.ckpt"
    assert (ckpt / "checkpoint").is_dir()
    state = get_fp32_state_dict_from_zero_checkpoint(str(ckpt), tag="checkpoint")
    exported = hf_weights(out)
    assert set(exported) <= {k.removeprefix("model.") for k in state}
    for name, tensor in exported.items():
        assert torch.equal(state[f"model.{name}"], tensor), name
    before = hf_weights_of(tiny_base)
    assert not torch.equal(
        before["model.layers.0.mlp.up_proj.weight"], exported["model.layers.0.mlp.up_proj.weight"]
    )  # it trained


def hf_weights_of(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))
