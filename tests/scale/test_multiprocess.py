"""Two CPU processes (gloo): DDP reproduces one process with doubled accumulation; FSDP2 trains.

Both go through `chimed-lit fit trainer.devices=2`, which Lightning re-launches for rank 1."""

from __future__ import annotations

import pytest
import torch

from tests.scale.conftest import SFT_SHORT, hf_weights, run_fit, summary, val_losses


@pytest.mark.slow
def test_ddp_two_processes_match_one_process_with_doubled_accumulation(tmp_path, tiny_base):
    one, two = tmp_path / "one", tmp_path / "two"
    # 1 process, 2 accumulated micro-batches of 4 per step; validation every 4 steps (8 batches)
    run_fit(
        one,
        *SFT_SHORT,
        f"model.pretrained={tiny_base}",
        "logger=csv",
        "trainer.accumulate_grad_batches=2",
        "trainer.val_check_interval=8",
    )
    # 2 processes of 4 per step (the sampler gives rank r the r-th block of each global batch)
    run_fit(
        two,
        *SFT_SHORT,
        f"model.pretrained={tiny_base}",
        "logger=[csv,wandb]",
        "strategy=ddp",
        "trainer.devices=2",
    )

    a, b = val_losses(one), val_losses(two)
    assert len(a) == len(b) == 4  # before fit, steps 4 and 8, after fit
    # tolerance: all-reduce vs in-place accumulation sum in a different order (fp32)
    assert a == pytest.approx(b, rel=2e-5)
    assert summary(one)["final"]["sft/val_loss"] == pytest.approx(
        summary(two)["final"]["sft/val_loss"], rel=2e-5
    )
    assert summary(two)["final"]["sft/val_loss"] < summary(two)["initial"]["sft/val_loss"] - 0.3
    wa, wb = hf_weights(one), hf_weights(two)
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], atol=5e-5, rtol=1e-4)

    # one output dir and one W&B run, whatever the number of ranks
    assert [p.name for p in (two / "wandb").glob("offline-run-*")].__len__() == 1
    assert sorted(p.name for p in two.iterdir() if p.is_dir()) == [".hydra", "sft", "wandb"]


@pytest.mark.slow
def test_fsdp2_two_processes_lower_the_loss_and_the_sharded_checkpoint_reloads(tmp_path, tiny_base):
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    out = tmp_path / "fsdp2"
    run_fit(
        out,
        *SFT_SHORT,
        f"model.pretrained={tiny_base}",
        "logger=csv",
        "strategy=fsdp2",
        "trainer.devices=2",
    )
    s = summary(out)
    assert s["global_step"] == 8
    assert s["final"]["sft/val_loss"] < s["initial"]["sft/val_loss"] - 0.3

    ckpt = out / "sft" / "checkpoints" / "last.ckpt"
    assert sorted(p.name for p in ckpt.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    dcp_to_torch_save(ckpt, tmp_path / "full.pt")  # the shards reassemble into full tensors
    state = torch.load(tmp_path / "full.pt", weights_only=True)["state_dict"]
    exported = hf_weights(out)
    for name, tensor in exported.items():
        torch.testing.assert_close(state[f"model.{name}"], tensor, atol=0, rtol=0)


@pytest.mark.slow
def test_dpo_on_fsdp2_with_two_processes_learns_the_pairs(tmp_path, tiny_base):
    """The policy and its frozen reference both sharded; chosen beats rejected after 3 steps."""
    out = tmp_path / "dpo"
    run_fit(
        out,
        "stage=dpo",
        f"model.pretrained={tiny_base}",
        "strategy=fsdp2",
        "trainer.devices=2",
        "trainer.max_steps=3",
        "trainer.val_check_interval=3",
        "data.batch_size=4",
        "trainer.enable_progress_bar=false",
        "logger=csv",
    )
    s = summary(out, "dpo")
    assert s["initial"]["dpo/val_loss"] == pytest.approx(0.6931, abs=1e-3)  # policy == reference
    assert s["final"]["dpo/val_loss"] < s["initial"]["dpo/val_loss"]
    assert s["final"]["dpo/reward_accuracy"] > 0.5
