"""What killed runs leave behind goes at the next start: half-written exports, checkpoints and
files under the output dir, stale tokenization files in the datasets cache; and `save_top_k`
holds across restarts."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from chimed_lit.io.leftovers import CACHE_IDLE_S, remove_leftovers
from tests.reliability.conftest import QUIET

TINY = [
    "stage=pretrain",
    *QUIET,
    "model.arch.num_hidden_layers=2",
    "scheduler.total_steps=6",
    "checkpoint.every_n_steps=1",
    "seed=21",
]


def plant(out: Path, cache: Path) -> tuple[list[Path], list[Path]]:
    """Leftovers of killed runs, and files that look alike but must stay."""
    leftovers = [
        out / "pretrain" / ".hf.tmp-ab12cd",
        out / "rlhf" / "round0" / "sft" / ".hf_adapter.tmp-x9",
        out / "pretrain" / "checkpoints" / ".step000004.ckpt.k2j3h4.tmp",
        out / "pretrain" / ".summary.json.a1b2c3d4",
        out / "pretrain" / ".sft.old",  # a swap cut short whose target is back in place
        cache / "datasets" / "tmpab12cd34",
    ]
    keep = [
        out / "pretrain" / "hf" / "config.json",
        out / ".hydra" / "config.yaml",
        out / "pretrain" / "sft" / "x.json",
        cache / "datasets" / "tmpfresh",  # a tokenization in flight elsewhere
        cache / "datasets" / "0123abcd.arrow",
    ]
    for p in [*leftovers, *keep]:
        if p.name.startswith(".") and ("tmp-" in p.name or p.name.endswith(".old")):
            p.mkdir(parents=True)
            (p / "model.safetensors").write_bytes(b"partial")
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"x")
    old = time.time() - CACHE_IDLE_S - 60
    os.utime(cache / "datasets" / "tmpab12cd34", (old, old))
    return leftovers, keep


def test_leftovers_are_removed_and_a_cut_swap_is_restored(tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    leftovers, keep = plant(out, cache)
    cut = out / "sft" / ".hf.old"  # killed between the two renames of a swap: hf/ is gone
    cut.mkdir(parents=True)
    (cut / "model.safetensors").write_bytes(b"old weights")
    gone = remove_leftovers(out, [str(cache)])
    assert sorted(gone) == sorted(leftovers)
    assert not any(p.exists() for p in leftovers)
    assert all(p.exists() for p in keep)
    assert (out / "sft" / "hf" / "model.safetensors").read_bytes() == b"old weights"


def test_only_rank_zero_cleans(tmp_path, monkeypatch):
    out, cache = tmp_path / "out", tmp_path / "cache"
    leftovers, _ = plant(out, cache)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert remove_leftovers(out, [str(cache)]) == []
    assert all(p.exists() for p in leftovers)


def test_fit_cleans_and_save_top_k_holds_across_restarts(run_cli, tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = [*TINY, f"paths.output_dir={out}", f"data.cache_dir={cache}"]
    r = run_cli("fit", *args, "trainer.max_steps=2")
    assert r.code == 0, r.err[-2000:]
    ckpts = out / "pretrain" / "checkpoints"
    assert sorted(p.name for p in ckpts.glob("step*.ckpt")) == ["step000002.ckpt"]
    # step checkpoints of earlier processes (save_top_k=1 counts per process)
    for n in (0, 1):
        shutil.copy(ckpts / "step000002.ckpt", ckpts / f"step00000{n}.ckpt")
        t = time.time() - 100 + n
        os.utime(ckpts / f"step00000{n}.ckpt", (t, t))
    leftovers, keep = plant(out, cache)
    r = run_cli("fit", *args, "trainer.max_steps=3", "resume=true")
    assert r.code == 0, r.err[-2000:]
    assert not any(p.exists() for p in leftovers)
    assert all(p.exists() for p in keep)
    assert sorted(p.name for p in ckpts.glob("step*.ckpt")) == ["step000003.ckpt"]


@pytest.mark.parametrize("template", ["step{step:06d}", None])
def test_prune_keeps_the_newest_and_the_resumed(tmp_path, template):
    from chimed_lit.io.checkpoints import prune_step_checkpoints

    names = ["step000001.ckpt", "step000002.ckpt", "step000003.ckpt"]
    if template is None:
        names = ["epoch=0-step=1.ckpt", "epoch=0-step=2.ckpt", "epoch=0-step=3.ckpt"]
    for i, n in enumerate(names):
        (tmp_path / n).write_bytes(b"c")
        os.utime(tmp_path / n, (1000 + i, 1000 + i))
    (tmp_path / "last.ckpt").write_bytes(b"c")
    os.utime(tmp_path / "last.ckpt", (900, 900))
    gone = prune_step_checkpoints(tmp_path, template, 1, protect=str(tmp_path / names[0]))
    assert [p.name for p in gone] == [names[1]]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([names[0], names[2], "last.ckpt"])
