"""Resume: N steps, then `resume=true` to 2N, equals a straight 2N run step by step (fp32)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

TOTAL = 12
COMMON = (
    "logger=csv",
    "trainer.log_every_n_steps=1",
    f"scheduler.total_steps={TOTAL}",
    "trainer.val_check_interval=100",
    "checkpoint.every_n_steps=100",
    "seed=7",
)


def train_losses(out: Path) -> dict[int, float]:
    rows = csv.DictReader((out / "pretrain" / "csv" / "metrics.csv").open())
    return {
        int(r["step"]): float(r["pretrain/train_loss"])
        for r in rows
        if r.get("pretrain/train_loss")
    }


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    import sys

    from hydra.core.global_hydra import GlobalHydra

    from chimed_lit.cli.main import main

    out = tmp_path_factory.mktemp("straight")
    saved = sys.argv
    try:
        assert main(["fit", *COMMON, f"paths.output_dir={out}", f"trainer.max_steps={TOTAL}"]) == 0
    finally:
        sys.argv = saved
        GlobalHydra.instance().clear()
    return out


# The demo gives 3 batches per epoch: 7 stops mid-epoch, 6 exactly at an epoch boundary.
@pytest.mark.parametrize("first", [7, 6], ids=["mid-epoch", "epoch-boundary"])
def test_resume_matches_straight_run(run_cli, tmp_path, straight, first):
    r = run_cli("fit", *COMMON, f"paths.output_dir={tmp_path}", f"trainer.max_steps={first}")
    assert r.code == 0, r.err[-3000:]
    r = run_cli(
        "fit", *COMMON, f"paths.output_dir={tmp_path}", f"trainer.max_steps={TOTAL}", "resume=true"
    )
    assert r.code == 0, r.err[-3000:]
    assert "resuming pretrain from" in r.out + r.err

    want, got = train_losses(straight), train_losses(tmp_path)
    later = [s for s in want if s >= first]
    assert len(later) >= TOTAL - first - 1
    for step in later:
        assert got[step] == pytest.approx(want[step], abs=1e-6), (step, want, got)

    a = load_file(straight / "pretrain" / "hf" / "model.safetensors")
    b = load_file(tmp_path / "pretrain" / "hf" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def test_resume_without_checkpoint_starts_fresh(run_cli, tmp_path):
    r = run_cli(
        "fit", *COMMON, f"paths.output_dir={tmp_path}", "trainer.max_steps=2", "resume=true"
    )
    assert r.code == 0, r.err[-3000:]
    assert "no checkpoint" in r.out + r.err
