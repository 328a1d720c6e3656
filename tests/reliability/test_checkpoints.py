"""Checkpoints a run can trust: atomic writes stamped with their stage; `resume=true` skips a
truncated, corrupt or foreign checkpoint with a warning and takes the previous one."""

from __future__ import annotations

import json
import logging
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from chimed_lit.io.checkpoints import (
    AtomicCheckpointIO,
    checkpoint_plugins,
    checkpoint_problem,
    find_resume_checkpoint,
)
from chimed_lit.io.errors import CheckpointError, ConfigError
from tests.reliability.conftest import QUIET, assert_same_weights, fit_in_process, metrics

TINY = [
    "stage=pretrain",
    *QUIET,
    "model.arch.num_hidden_layers=2",
    "scheduler.total_steps=5",
    "checkpoint.every_n_steps=2",
    "seed=31",
]


@pytest.fixture(scope="module")
def three_steps(tmp_path_factory) -> Path:
    """A 3-step pretrain run: checkpoints/step000002.ckpt and last.ckpt (step 3)."""
    return fit_in_process(tmp_path_factory.mktemp("three"), *TINY, "trainer.max_steps=3")


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_checkpoints_are_stamped_and_leave_no_temporary_files(three_steps):
    ckpts = three_steps / "pretrain" / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.ckpt", "step000002.ckpt"]
    for p in ckpts.iterdir():
        saved = torch.load(p, weights_only=True, map_location="cpu")
        assert saved["chimed_lit"]["stage"] == "pretrain"
        assert "optimizer.lr" in json.loads(saved["chimed_lit"]["run"])["config"]  # resume guard
        assert checkpoint_problem(p, "pretrain") is None


def test_failed_save_leaves_the_old_checkpoint_whole(tmp_path):
    io = AtomicCheckpointIO("sft")
    target = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "global_step": 1, "loops": {}}, target)
    before = target.read_bytes()
    # a local function cannot be pickled: the save fails half-way
    with pytest.raises((pickle.PicklingError, AttributeError)):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "bad": lambda: 0}, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_truncated_checkpoint_is_skipped_for_the_previous_one(run_cli, three_steps, tmp_path):
    run = copy_run(three_steps, tmp_path / "run")
    last = run / "pretrain" / "checkpoints" / "last.ckpt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])  # the node died while writing it
    r = run_cli("fit", *TINY, "trainer.max_steps=5", f"paths.output_dir={run}", "resume=true")
    assert r.code == 0, r.err[-3000:]
    assert f"skipping checkpoint {last}: unreadable (PytorchStreamReader failed" in r.out + r.err
    previous = run / "pretrain" / "checkpoints" / "step000002.ckpt"
    assert f"resuming pretrain from {previous}" in r.out + r.err

    straight = tmp_path / "straight"
    r = run_cli("fit", *TINY, "trainer.max_steps=5", f"paths.output_dir={straight}")
    assert r.code == 0, r.err[-3000:]
    want, got = (metrics(d, "pretrain", "pretrain/train_loss") for d in (straight, run))
    for step in (2, 3, 4):
        assert got[step] == pytest.approx(want[step], abs=1e-6), step
    assert_same_weights(straight / "pretrain" / "hf", run / "pretrain" / "hf")


def test_bytes_damaged_mid_file_caught_by_the_full_check(three_steps, tmp_path, caplog):
    run = copy_run(three_steps, tmp_path / "run")
    last = run / "pretrain" / "checkpoints" / "last.ckpt"
    data = bytearray(last.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 64] = bytes(b ^ 0xFF for b in data[mid : mid + 64])  # flipped bits
    last.write_bytes(bytes(data))
    assert checkpoint_problem(last, "pretrain", "quick") is None  # structure alone looks fine
    assert checkpoint_problem(last, "pretrain", "full").startswith("corrupt data (CRC mismatch")
    with caplog.at_level(logging.WARNING, logger="chimed_lit"):
        chosen = find_resume_checkpoint(run / "pretrain", "pretrain")
    assert chosen == str(run / "pretrain" / "checkpoints" / "step000002.ckpt")
    assert f"skipping checkpoint {last}: corrupt data" in caplog.text


def test_checkpoint_of_another_stage_is_refused(run_cli, three_steps, tmp_path):
    # pretrain checkpoints copied where the sft stage keeps its own
    run = tmp_path / "run"
    shutil.copytree(three_steps / "pretrain" / "checkpoints", run / "sft" / "checkpoints")
    with pytest.raises(CheckpointError) as e:
        find_resume_checkpoint(run / "sft", "sft")
    assert "last.ckpt: written by the 'pretrain' stage, not 'sft'" in str(e.value)
    assert "move them away to start over, or run with resume=false" in str(e.value)


def test_only_unusable_checkpoints_is_an_error_not_a_restart(run_cli, three_steps, tmp_path):
    run = copy_run(three_steps, tmp_path / "run")
    for p in (run / "pretrain" / "checkpoints").iterdir():
        p.write_bytes(b"")
    r = run_cli("fit", *TINY, "trainer.max_steps=5", f"paths.output_dir={run}", "resume=true")
    assert r.code == 4, r.err[-3000:]
    assert "chimed-lit: resume=true found no usable checkpoint:" in r.err
    assert "step000002.ckpt: empty file" in r.err and "Traceback" not in r.err


def test_what_an_interrupted_save_left_is_removed(three_steps, tmp_path):
    run = copy_run(three_steps, tmp_path / "run")
    partial = run / "pretrain" / "checkpoints" / ".last.ckpt.k3j9x.tmp"
    partial.write_bytes(b"PK\x03\x04 half a checkpoint")
    chosen = find_resume_checkpoint(run / "pretrain", "pretrain")
    assert chosen == str(run / "pretrain" / "checkpoints" / "last.ckpt")
    assert not partial.exists()


def test_lightning_slurm_checkpoints_are_candidates(three_steps, tmp_path):
    run = copy_run(three_steps, tmp_path / "run")
    hpc = run / "pretrain" / "hpc_ckpt_1.ckpt"
    shutil.copy(run / "pretrain" / "checkpoints" / "step000002.ckpt", hpc)  # newest now
    assert find_resume_checkpoint(run / "pretrain", "pretrain") == str(hpc)


def test_unknown_verify_mode_is_a_clear_error(three_steps):
    with pytest.raises(ConfigError, match=r"checkpoint.verify='crc': use one of full, quick"):
        find_resume_checkpoint(three_steps / "pretrain", "pretrain", "crc")


def test_user_plugins_are_kept_and_a_user_checkpoint_io_wins():
    from lightning.fabric.plugins import TorchCheckpointIO
    from lightning.fabric.plugins.environments import LightningEnvironment
    from lightning.pytorch.strategies import DeepSpeedStrategy

    env = LightningEnvironment()
    got = checkpoint_plugins("auto", "sft", [env])
    assert got[0] is env and isinstance(got[1], AtomicCheckpointIO) and got[1].stage == "sft"
    own = TorchCheckpointIO()
    assert checkpoint_plugins("auto", "sft", [own]) == [own]
    assert checkpoint_plugins(DeepSpeedStrategy.__new__(DeepSpeedStrategy), "sft") == []
