"""`BaseDataModule`: the part every stage shares (read, validate, split, tokenize, load).

Subclasses say what a record means (`parse`), how it becomes tokens (`tokenize`) and how
examples become a batch (`collate`). Validation happens where data enters: a bad record is
reported with its file, line and field, or skipped and counted with `on_bad_record=skip`.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import lightning as L
import torch

from chimed_lit.data.sampler import ResumableDataLoader, ResumableSampler
from chimed_lit.data.sources import Record, read_source
from chimed_lit.io.errors import ConfigError, DataError
from chimed_lit.plugins import lightning_internals

log = logging.getLogger(__name__)


class FieldError(ValueError):
    """Raised by `parse` for a bad field; the base class adds file and line."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class BaseDataModule(L.LightningDataModule):
    """Knobs: `train_files` / `val_files` (None: the demo corpus; else local JSON, JSONL, CSV, Parquet, TXT, or Hub ids),
    `val_fraction` (held out from train when no `val_files`), `file_format`, `encoding`,
    `text_split` (TXT: line|paragraph|file), `hub_subset`, `hub_split`, `on_bad_record`
    (error|skip), `report_bad` (how many skipped records to show), `max_length`, `batch_size`,
    `eval_batch_size`, `num_workers`, `seed`, `cache_dir` (tokenized `datasets` cache)."""

    demo_files: tuple[str, str] = ("", "")  # (train, held-out) in chimed_lit/demo

    def __init__(
        self,
        tokenizer: Any = None,
        train_files: list[str] | None = None,
        val_files: list[str] | None = None,
        val_fraction: float = 0.1,
        file_format: str | None = None,
        encoding: str = "utf-8",
        text_split: str = "line",
        hub_subset: str | None = None,
        hub_split: str = "train",
        on_bad_record: str = "error",
        report_bad: int = 5,
        max_length: int = 512,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        cache_dir: str | None = None,
        max_records: int | None = None,
    ):
        super().__init__()
        if on_bad_record not in ("error", "skip"):
            raise ConfigError(
                f"data.on_bad_record must be 'error' or 'skip', got {on_bad_record!r}"
            )
        if train_files is None:  # the shipped demo corpus and its held-out file
            from chimed_lit.demo import demo_path

            train_files = [demo_path(self.demo_files[0])]
            val_files = val_files if val_files is not None else [demo_path(self.demo_files[1])]
        if not train_files:
            raise ConfigError("data.train_files is empty: give at least one file or Hub dataset id")
        self.tokenizer = tokenizer
        self.train_files, self.val_files = list(train_files), list(val_files or [])
        self.val_fraction, self.max_length, self.seed = val_fraction, max_length, seed
        self.read_kwargs = dict(
            fmt=file_format,
            encoding=encoding,
            text_split=text_split,
            hub_subset=hub_subset,
            hub_split=hub_split,
        )
        self.on_bad_record, self.report_bad = on_bad_record, report_bad
        self.batch_size, self.num_workers = batch_size, num_workers
        self.eval_batch_size = eval_batch_size or batch_size
        self.cache_dir, self.max_records = cache_dir, max_records
        self.stats: dict[str, int] = {}
        self.train_dataset = self.val_dataset = None

    # ----- what subclasses define -------------------------------------------------------------
    def parse(self, data: dict[str, Any]) -> dict[str, Any]:
        """Validate and normalise one raw record; raise `FieldError` for a bad field."""
        raise NotImplementedError  # abstractmethod-like: each stage defines its schema

    def tokenize(self, example: dict[str, Any]) -> dict[str, Any]:
        """Token ids of one parsed example (may add `keep: bool`, `truncated: bool`)."""
        raise NotImplementedError  # abstractmethod-like

    def collate(self, batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        raise NotImplementedError  # abstractmethod-like

    def postprocess(self, dataset, split: str):
        """Hook after tokenization (pre-training packs here)."""
        return dataset

    # ----- reading and validating -------------------------------------------------------------
    def load_records(self, specs: list[str], split: str) -> list[dict[str, Any]]:
        """Parse every record of `specs`; errors name file, line and field (or are counted)."""
        kept: list[dict[str, Any]] = []
        bad: list[DataError] = []
        seen_ids: dict[Any, str] = {}
        for spec in specs:
            for rec in read_source(spec, **dict(self.read_kwargs)):
                try:
                    _check_unique_id(rec, seen_ids)
                    kept.append(self._parse_record(rec))
                except DataError as e:
                    if self.on_bad_record == "error":
                        raise
                    bad.append(e)
                if self.max_records and len(kept) >= self.max_records:
                    break
        self.stats[f"{split}_records"] = len(kept)
        self.stats[f"{split}_skipped"] = len(bad)
        if bad:
            shown = "\n".join(f"  {e}" for e in bad[: self.report_bad])
            log.warning(
                "skipped %d bad %s record(s) (data.on_bad_record=skip); first %d:\n%s",
                len(bad),
                split,
                min(len(bad), self.report_bad),
                shown,
            )
        if not kept:
            raise DataError(
                ", ".join(specs),
                f"no usable {split} records" + (f" ({len(bad)} skipped as bad)" if bad else ""),
            )
        return kept

    def split_records(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Parsed train and validation records: `val_files`, or `val_fraction` of train held
        out with `seed` (the same split on every run and rank)."""
        train = self.load_records(self.train_files, "train")
        if self.val_files:
            return train, self.load_records(self.val_files, "val")
        if self.val_fraction <= 0:
            return train, []
        random.Random(self.seed).shuffle(train)
        n_val = max(1, int(len(train) * self.val_fraction))
        train, val = train[n_val:], train[:n_val]
        self.stats.update(train_records=len(train), val_records=len(val))
        return train, val

    def _parse_record(self, rec: Record) -> dict[str, Any]:
        if rec.error is not None:
            raise rec.error
        try:
            return self.parse(rec.data)
        except FieldError as e:
            raise DataError(rec.source, str(e), where=rec.where, field=e.field) from None

    # ----- Lightning hooks --------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        if self.tokenizer is None:
            raise ConfigError("the DataModule needs a tokenizer (the CLI passes the model's)")
        train, val = self.split_records()
        self.train_dataset = self._tokenized(train, "train")
        self.val_dataset = self._tokenized(val, "val") if val else None

    def _tokenized(self, examples: list[dict[str, Any]], split: str):
        import datasets
        from datasets.fingerprint import Hasher

        ds = datasets.Dataset.from_list(examples)
        key = Hasher.hash([type(self).__name__, examples, self.tokenizer, self._cache_knobs()])
        cache = Path(self.cache_dir or "~/.cache/chimed_lit").expanduser() / "datasets"
        cache.mkdir(parents=True, exist_ok=True)
        ds = ds.map(
            self.tokenize,
            remove_columns=ds.column_names,
            cache_file_name=str(cache / f"{key}.arrow"),
            desc=f"tokenizing {split}",
        )
        if "truncated" in ds.column_names:
            self.stats[f"{split}_truncated"] = int(sum(ds["truncated"]))
        if "keep" in ds.column_names:
            keep = ds["keep"]
            self.stats[f"{split}_dropped"] = len(keep) - int(sum(keep))
            ds = ds.filter(
                lambda k: k,
                input_columns="keep",
                desc="dropping",
                cache_file_name=str(cache / f"{key}-kept.arrow"),
            )
        ds = ds.remove_columns([c for c in ("keep", "truncated") if c in ds.column_names])
        ds = self.postprocess(ds, split)
        return ds.with_format("torch")

    def _cache_knobs(self) -> dict[str, Any]:
        """Settings that change the tokenized output (subclasses extend)."""
        return {"max_length": self.max_length}

    def _progress(self) -> int:
        return lightning_internals.batches_processed(self.trainer)

    def train_dataloader(self) -> ResumableDataLoader:
        t = self.trainer
        sampler = ResumableSampler(
            len(self.train_dataset),
            shuffle=True,
            seed=self.seed,
            rank=t.global_rank if t else 0,
            world_size=t.world_size if t else 1,
            block=self.batch_size,
        )
        return ResumableDataLoader(
            self.train_dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            collate_fn=self.collate,
            num_workers=self.num_workers,
            drop_last=True,
            progress=self._progress if t else None,
            generator=self._generator(),
        )

    def val_dataloader(self):
        from torch.utils.data import DataLoader

        if self.val_dataset is None:
            return []
        return DataLoader(
            self.val_dataset,
            batch_size=self.eval_batch_size,
            shuffle=False,
            collate_fn=self.collate,
            num_workers=self.num_workers,
            generator=self._generator(),
        )

    def _generator(self) -> torch.Generator:
        """Loaders draw their worker seed from this, not from the global RNG: creating an
        iterator (every epoch, every validation) must not shift the streams that sampling uses,
        or a resumed run would sample differently from an uninterrupted one."""
        return torch.Generator().manual_seed(self.seed)


def _check_unique_id(rec: Record, seen: dict[Any, str]) -> None:
    """A record's `id` (when it has one) appears once per split: a repeated id is usually a
    file given twice or merged badly, and would weigh those examples double."""
    rid = rec.data.get("id") if rec.error is None and isinstance(rec.data, dict) else None
    if rid is None or isinstance(rid, dict | list):
        return
    here = f"{rec.source}, {rec.where}" if rec.where else rec.source
    if rid in seen:
        raise DataError(
            rec.source, f"duplicate id {rid!r} (first at {seen[rid]})", where=rec.where, field="id"
        )
    seen[rid] = here
