"""`PretrainDataModule`: continued pre-training on plain documents, packed into blocks."""

from __future__ import annotations

from typing import Any

import torch

from chimed_lit.data.base import BaseDataModule, FieldError
from chimed_lit.data.packing import pack, split_long


class PretrainDataModule(BaseDataModule):
    """Knobs (besides the base's): `text_field` (default `text`; TXT files give one document per
    line), `pack` (pack documents into `max_length` blocks; false = one document per row).
    Each document is `<s> text </s>`; documents longer than a block are split."""

    demo_files = ("pretrain.jsonl", "pretrain_val.jsonl")
    example_noun = "blocks"  # what a batch holds; documents are split, never dropped

    def __init__(self, text_field: str = "text", pack: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.text_field, self.pack = text_field, pack

    def parse(self, data: dict[str, Any]) -> dict[str, Any]:
        if self.text_field not in data:
            raise FieldError(self.text_field, f"missing (record has {sorted(data)[:8]})")
        text = data[self.text_field]
        if not isinstance(text, str):
            raise FieldError(self.text_field, f"expected text, got {type(text).__name__}")
        if not text.strip():
            raise FieldError(self.text_field, "empty text")
        return {"text": text}

    def tokenize(self, example: dict[str, Any]) -> dict[str, Any]:
        tok = self.tokenizer
        ids = tok(example["text"], add_special_tokens=False)["input_ids"]
        doc = (
            ([tok.bos_token_id] if tok.bos_token_id is not None else []) + ids + [tok.eos_token_id]
        )
        return {"input_ids": doc}

    def _cache_knobs(self) -> dict[str, Any]:
        return {"max_length": self.max_length, "pack": self.pack}

    def postprocess(self, dataset, split: str):
        import datasets

        originals = dataset["input_ids"]
        docs = [chunk for ids in originals for chunk in split_long(ids, self.max_length)]
        self.stats[f"{split}_split_documents"] = sum(len(d) > self.max_length for d in originals)
        blocks = pack(docs, self.max_length, self.tokenizer.pad_token_id, packed=self.pack)
        self.stats[f"{split}_documents"] = len(docs)
        self.stats[f"{split}_blocks"] = len(blocks["input_ids"])
        return datasets.Dataset.from_dict(blocks)

    def collate(self, batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return {
            k: torch.stack([b[k] for b in batch]) for k in ("input_ids", "labels", "position_ids")
        }
