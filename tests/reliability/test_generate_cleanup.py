"""`chimed-lit generate` removes what killed writes of its own output file left beside it
(`.<name>.XXXXXXXX`, the temporary of `io/atomic.write_bytes`) once untouched for
`CACHE_IDLE_S`, and nothing else: the folder may be anyone's, and another process may be
writing the same file."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from chimed_lit.io.leftovers import CACHE_IDLE_S, remove_output_leftovers


def plant(folder: Path, name: str) -> tuple[list[Path], list[Path]]:
    """Stale temporaries of `name`'s atomic write, and files that look alike but must stay."""
    stale = [folder / f".{name}.a1b2c3d4", folder / f".{name}.zz_09xyq"]
    keep = [
        folder / f".{name}.fresh123",  # a write in flight
        folder / ".other.jsonl.a1b2c3d4",  # another file's temporary
        folder / f".{name}.a1b2c3d4e",  # not 8 characters
        folder / f".{name}.ABCDEFGH",  # not mkstemp's alphabet
        folder / f"{name}.a1b2c3d4",  # not hidden
        folder / "notes.txt",
    ]
    old = time.time() - CACHE_IDLE_S - 60
    for p in [*stale, *keep]:
        p.write_bytes(b"partial")
        if p.name != f".{name}.fresh123":
            os.utime(p, (old, old))
    return stale, keep


def test_only_the_output_files_stale_temporaries_go(tmp_path, monkeypatch):
    stale, keep = plant(tmp_path, "replies.jsonl")
    folder = tmp_path / "sub"
    folder.mkdir()
    inside = folder / ".replies.jsonl.a1b2c3d4"  # same name, another folder
    inside.write_bytes(b"x")
    os.utime(inside, (0, 0))
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert remove_output_leftovers(tmp_path / "replies.jsonl") == []
    monkeypatch.delenv("LOCAL_RANK")
    assert sorted(remove_output_leftovers(tmp_path / "replies.jsonl")) == sorted(stale)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in [*keep, inside])
    assert remove_output_leftovers(tmp_path / "absent" / "replies.jsonl") == []


def test_generate_removes_its_outputs_stale_temporaries(run_cli, tmp_path, tiny_models):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "头痛怎么办？"}, ensure_ascii=False) + "\n")
    out = tmp_path / "out" / "replies.jsonl"
    out.parent.mkdir()
    stale, keep = plant(out.parent, out.name)
    r = run_cli(
        "generate",
        f"model.pretrained={tiny_models['lm']}",
        f"input={prompts}",
        f"output={out}",
        "sampling.max_new_tokens=4",
    )
    assert r.code == 0, r.err[-3000:]
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in keep)
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(
        [out.name, *(p.name for p in keep)]
    )  # and the write of this run left no temporary
    assert json.loads(out.read_text())["response_tokens"] <= 4
