"""`BaseDataModule`: the part every stage shares (read, validate, split, tokenize, load).

Subclasses say what a record means (`parse`), how it becomes tokens (`tokenize`) and how
examples become a batch (`collate`). Validation happens where data enters: a bad record is
reported with its file, line and field, or skipped and counted with `on_bad_record=skip`.
"""

from __future__ import annotations

import codecs
import logging
import random
from collections.abc import Iterator
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


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def data_problems(
    batch_size: Any = 8,
    eval_batch_size: Any = None,
    max_length: Any = 512,
    val_fraction: Any = 0.1,
    max_dropped_fraction: Any = 0.05,
    encoding: Any = "utf-8",
    on_bad_record: Any = "error",
    **_: Any,
) -> list[str]:
    """The problems of the `data.*` values every DataModule shares, one sentence each naming
    the key (the one preflight reports them before anything is built; `BaseDataModule` raises
    them when built directly). Extra keyword arguments (a stage's own knobs) are ignored."""
    out = []
    for key, v in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
        if (v is not None or key == "batch_size") and not (_is_int(v) and v > 0):
            out.append(f"data.{key}={v}: expected a positive integer")
    if not (_is_int(max_length) and max_length >= 2):
        out.append(f"data.max_length={max_length}: expected an integer of at least 2 (tokens)")
    if not (isinstance(val_fraction, int | float) and 0 <= val_fraction < 1):
        out.append(
            f"data.val_fraction={val_fraction}: expected a share in [0, 1) of the train "
            "records to hold out (0: no validation split)"
        )
    if not (
        isinstance(max_dropped_fraction, int | float)
        and not isinstance(max_dropped_fraction, bool)
        and 0 <= max_dropped_fraction <= 1
    ):
        out.append(f"data.max_dropped_fraction={max_dropped_fraction}: expected a share in [0, 1]")
    try:
        codecs.lookup(str(encoding))
    except LookupError:
        out.append(f"data.encoding={encoding!r}: unknown encoding (e.g. utf-8, gb18030, utf-16)")
    if on_bad_record not in ("error", "skip"):
        out.append(f"data.on_bad_record={on_bad_record!r}: use one of error, skip")
    return out


class BaseDataModule(L.LightningDataModule):
    """Knobs: `train_files` / `val_files` (None: the demo corpus; else local JSON, JSONL, CSV, Parquet, TXT, or Hub ids),
    `val_fraction` (held out from train when no `val_files`), `file_format`, `encoding`,
    `text_split` (TXT: line|paragraph|file), `hub_subset`, `hub_split`, `on_bad_record`
    (error|skip), `report_bad` (how many skipped records to show), `max_length`, `batch_size`,
    `eval_batch_size`, `num_workers`, `seed`, `cache_dir` (tokenized `datasets` cache),
    `max_dropped_fraction` (the most examples per split that tokenization may drop, as too long
    for `max_length`, before setup fails with `DataError`; see `_check_dropped`)."""

    demo_files: tuple[str, str] = ("", "")  # (train, held-out) in chimed_lit/demo
    # what `_check_dropped` calls the examples, and why `tokenize` drops one (after "N of M ...")
    example_noun = "examples"
    drop_reason = "do not fit data.max_length={max_length}"

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
        max_dropped_fraction: float = 0.05,
    ):
        super().__init__()
        problems = data_problems(
            batch_size,
            eval_batch_size,
            max_length,
            val_fraction,
            max_dropped_fraction,
            encoding,
            on_bad_record,
        )
        if problems:
            raise ConfigError(problems)
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
        self.max_dropped_fraction = max_dropped_fraction
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
            for item in self.parsed_records(spec, seen_ids):
                if isinstance(item, DataError):
                    if self.on_bad_record == "error":
                        raise item
                    bad.append(item)
                else:
                    kept.append(item)
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

    def parsed_records(
        self, spec: str, seen_ids: dict[Any, str]
    ) -> Iterator[dict[str, Any] | DataError]:
        """Each record of one file (or Hub id) parsed, or the `DataError` that names why it is
        bad (`load_records` raises it or counts it as skipped). `seen_ids` spans the split."""
        for rec in read_source(spec, **dict(self.read_kwargs)):
            try:
                _check_unique_id(rec, seen_ids)
                yield self._parse_record(rec)
            except DataError as e:
                yield e

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
        if n_val >= len(train):
            raise DataError(
                ", ".join(self.train_files),
                f"{len(train)} train record(s) are too few to hold out "
                f"data.val_fraction={self.val_fraction} for validation and train on the rest; "
                "add records, give data.val_files, or set data.val_fraction=0",
            )
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

    def _check_full_batch(self, world: int) -> None:
        """Training drops the last partial batch (every rank takes whole batches): with fewer
        examples than one batch it would take no step at all and export untrained weights."""
        n = len(self.train_dataset)
        if n < self.batch_size * world:
            per = f" x {world} processes" if world > 1 else ""
            records = self.stats.get("train_records")
            of = f" (from {records} records)" if records is not None else ""
            raise DataError(
                ", ".join(self.train_files),
                f"only {n} train {self.example_noun}{of}: not one full batch of "
                f"data.batch_size={self.batch_size}{per}, so training would take no step; "
                "lower data.batch_size or add data",
            )

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
        self._check_dropped(len(ds), split)
        ds = ds.remove_columns([c for c in ("keep", "truncated") if c in ds.column_names])
        ds = self.postprocess(ds, split)
        return ds.with_format("torch")

    def _check_dropped(self, kept: int, split: str) -> None:
        """The one rule for every stage: tokenization may drop (`keep` false) at most
        `max_dropped_fraction` of a split's examples, and never all of them; more is a
        `DataError` naming the files, the counts and the knobs (else a run would train on a
        fraction of its data with only a warning). Dropped examples are logged either way."""
        dropped = self.stats.get(f"{split}_dropped", 0)
        total = dropped + kept
        self.stats[f"{split}_dropped"] = dropped
        if not dropped:
            return
        share = dropped / total
        files = self.train_files if split == "train" or not self.val_files else self.val_files
        reason = self.drop_reason.format(max_length=self.max_length)
        head = f"{dropped} of {total} {split} {self.example_noun} ({share:.1%}) {reason}"
        if kept == 0:
            raise DataError(", ".join(files), f"{head}: none is left; raise data.max_length")
        if share > self.max_dropped_fraction:
            raise DataError(
                ", ".join(files),
                f"{head}, more than data.max_dropped_fraction={self.max_dropped_fraction}; raise "
                "data.max_length, or data.max_dropped_fraction to accept dropping them",
            )
        log.warning(
            "dropped %s (within data.max_dropped_fraction=%s)", head, self.max_dropped_fraction
        )

    def _cache_knobs(self) -> dict[str, Any]:
        """Settings that change the tokenized output (subclasses extend)."""
        return {"max_length": self.max_length}

    def _progress(self) -> int:
        return lightning_internals.batches_processed(self.trainer)

    def train_dataloader(self) -> ResumableDataLoader:
        t = self.trainer
        self._check_full_batch(t.world_size if t else 1)
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
