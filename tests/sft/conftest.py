"""Fixtures for the SFT data tests: the demo tokenizer (tests/conftest.py trains it once),
a factory for `SFTDataModule`s over records written to a temp file, and the shared samples."""

from __future__ import annotations

import copy
import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from chimed_lit.data.packing import IGNORE

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="session")
def tok(demo_tok):
    """A private copy of the session's demo tokenizer (tests here change its chat template)."""
    return copy.deepcopy(demo_tok)


@pytest.fixture
def write_records(tmp_path: Path) -> Callable[..., str]:
    """Write records as JSONL (dicts), a JSON array (lists) or CSV (`name` ending .csv)."""

    def write(records: list[Any], name: str = "data.jsonl") -> str:
        path = tmp_path / name
        if name.endswith(".csv"):
            with path.open("w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=list(records[0]))
                writer.writeheader()
                writer.writerows(records)
        elif name.endswith(".json"):
            path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
        else:
            path.write_text(
                "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
            )
        return str(path)

    return write


@pytest.fixture
def make_dm(tok, tmp_path: Path) -> Callable[..., Any]:
    """An `SFTDataModule` over `train_files`, set up, no validation split unless asked."""
    from chimed_lit.data.sft import SFTDataModule

    def make(train_files: list[str] | None, tokenizer=None, setup: bool = True, **knobs: Any):
        knobs.setdefault("val_fraction", 0.0)
        dm = SFTDataModule(
            tokenizer=tokenizer or tok,
            train_files=train_files,
            cache_dir=str(tmp_path / "cache"),
            **knobs,
        )
        if setup:
            dm.setup("fit")
        return dm

    return make


@pytest.fixture
def labelled_runs() -> Callable[[Any, Any, Any], list[str]]:
    """The decoded runs of consecutive target tokens of one example, after checking that every
    target equals its input id (labels are never shifted or altered, only masked)."""

    def runs(tokenizer, input_ids, labels) -> list[str]:
        ids, labels = torch.as_tensor(input_ids).tolist(), torch.as_tensor(labels).tolist()
        assert len(ids) == len(labels)
        spans: list[list[int]] = []
        prev = False
        for i, lab in zip(ids, labels, strict=True):
            on = lab != IGNORE
            if on:
                assert lab == i
                if not prev:
                    spans.append([])
                spans[-1].append(i)
            prev = on
        return [tokenizer.decode(s) for s in spans]

    return runs


@pytest.fixture
def shared_file() -> Callable[[str], str]:
    def get(relative: str) -> str:
        path = SHARED_DATA / relative
        if not path.is_file():
            pytest.skip(f"shared sample data not available: {path}")
        return str(path)

    return get
