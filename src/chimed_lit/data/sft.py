"""`SFTDataModule`: supervised fine-tuning on conversations, the loss on the assistant's words.

Knobs (besides the base's):
- `format`: auto|alpaca|sharegpt|messages|dialogue|history|qa_csv (see `conversation.py`);
  `question_field` / `answer_field` / `title_field`: the columns of a `qa_csv` table.
- `template`: chimed|ziya|tokenizer (see `chat/render.py`, which generation and eval render with too).
- `train_on`: `all_assistant` (every assistant turn is a target) or `last_assistant`.
- `max_length`: longest example in tokens; `pack`: pack examples into `max_length` blocks.
- `max_dropped_fraction` (the base's rule, shared by every stage): the most examples (per
  split) that may be lost because nothing to learn is left after truncation, before setup
  fails with `DataError`.
- `weights`: one per train file to mix files in set proportions (see `mix_by_weight`).

Labels equal the input ids on assistant tokens, i.e. each answer's text and the EOS (end of
turn) that closes it, and are -100 on everything else: system and user text and the template's
markers (`[human]:`, the `[bot]:` header before an answer, the newlines). So the model learns to
answer and to stop, and the prompt it is given at inference (`...[bot]:`) is never a target.

Guards:
- A real EOS is never masked: labels come from the rendering, not from `input_ids != pad_id`,
  and `collate` builds `attention_mask` from lengths, so a pad token equal to EOS (as in the
  original ChiMed code, whose final EOS was masked: the model never learned to stop) is harmless.
- Truncation keeps whole turns from the start and drops later ones that do not fit; only a
  first exchange longer than `max_length` is cut mid-turn. Both count as `truncated`.
- An example with no target left (its first question alone fills `max_length`) is dropped and
  counted; too many dropped raises `DataError` naming the counts and the knob.
Stats: `{split}_records`, `_skipped` (bad records), `_trailing_user_dropped`, `_truncated`,
`_dropped`, `_examples`, and `_blocks` when packing; `train_mixed` when mixing by weight.
"""

from __future__ import annotations

import logging
import random
from typing import Any, TypeVar

import torch

from chimed_lit.chat.render import TEMPLATE_CHOICES, render_tokens
from chimed_lit.chat.templates import TEMPLATES
from chimed_lit.data.base import BaseDataModule
from chimed_lit.data.conversation import FORMATS, QAColumns, to_messages
from chimed_lit.data.packing import IGNORE, pack_labelled
from chimed_lit.io.errors import ConfigError

log = logging.getLogger(__name__)
T = TypeVar("T")
TRAIN_ON = ("all_assistant", "last_assistant")


def mix_by_weight(groups: list[list[T]], weights: list[float], seed: int = 0) -> list[T]:
    """Resample groups (one per file) to the proportions `weights`, keeping the total size.

    With N records in all, group i gets t_i = round(N * w_i / sum(w)) examples: every record
    repeated t_i // n_i times, plus t_i % n_i distinct records drawn without replacement with
    `seed` (so a small file is upsampled, a large one subsampled, and the result is the same on
    every run and rank)."""
    if len(groups) != len(weights):
        raise ConfigError(f"data.weights has {len(weights)} values for {len(groups)} train files")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ConfigError(f"data.weights must be non-negative with a positive sum, got {weights}")
    rng = random.Random(seed)
    total, norm = sum(len(g) for g in groups), sum(weights)
    mixed: list[T] = []
    for group, w in zip(groups, weights, strict=True):
        target = round(total * w / norm)
        repeats, rest = divmod(target, len(group))
        mixed += group * repeats + [group[i] for i in sorted(rng.sample(range(len(group)), rest))]
    return mixed


class SFTDataModule(BaseDataModule):
    demo_files = ("sft.jsonl", "sft_val.jsonl")
    drop_reason = (
        "have nothing left to learn after truncation to data.max_length={max_length} "
        "(the first user turn alone fills it)"
    )

    def __init__(
        self,
        format: str = "auto",
        template: str = "chimed",
        train_on: str = "all_assistant",
        pack: bool = False,
        weights: list[float] | None = None,
        question_field: str = "ask",
        answer_field: str = "answer",
        title_field: str | None = "title",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        problems = []
        if format not in ("auto", *FORMATS):
            problems.append(
                f"data.format must be auto or one of {', '.join(FORMATS)}, got {format!r}"
            )
        if template not in TEMPLATE_CHOICES:
            problems.append(
                f"data.template must be one of {', '.join(TEMPLATE_CHOICES)}, got {template!r}"
            )
        if train_on not in TRAIN_ON:
            problems.append(f"data.train_on must be one of {', '.join(TRAIN_ON)}, got {train_on!r}")
        if weights is not None and len(weights) != len(self.train_files):
            problems.append(
                f"data.weights has {len(weights)} values for {len(self.train_files)} "
                "train files (one weight per file)"
            )
        if problems:
            raise ConfigError(problems)
        self.format, self.template, self.train_on, self.pack = format, template, train_on, pack
        self.weights = list(weights) if weights is not None else None
        self.qa = QAColumns(question_field, answer_field, title_field)
        self._trailing = 0

    # ----- records -> conversations -----------------------------------------------------------
    def parse(self, data: dict[str, Any]) -> dict[str, Any]:
        conv = to_messages(data, self.format, self.qa)
        self._trailing += conv.dropped_turns > 0
        return {"messages": conv.messages}

    def load_records(self, specs: list[str], split: str) -> list[dict[str, Any]]:
        """As the base, counting trailing user turns; with `weights`, each train file is read on
        its own (`max_records` then applies per file) and its records tagged for mixing."""
        self._trailing = 0
        if split == "train" and self.weights is not None:
            kept, skipped = [], 0
            for i, spec in enumerate(specs):
                kept += [{**r, "source": i} for r in super().load_records([spec], split)]
                skipped += self.stats[f"{split}_skipped"]
            self.stats.update({f"{split}_records": len(kept), f"{split}_skipped": skipped})
        else:
            kept = super().load_records(specs, split)
        self.stats[f"{split}_trailing_user_dropped"] = self._trailing
        return kept

    def setup(self, stage: str | None = None) -> None:
        own = getattr(self.tokenizer, "chat_template", None)
        if self.template in TEMPLATES and own and own != TEMPLATES[self.template]:
            log.warning(
                "data.template=%s differs from the tokenizer's chat_template: inference "
                "with apply_chat_template would not render as training did",
                self.template,
            )
        super().setup(stage)

    def _tokenized(self, examples: list[dict[str, Any]], split: str):
        if split == "train" and self.weights is not None:
            groups = [
                ([e for e in examples if e["source"] == i], w) for i, w in enumerate(self.weights)
            ]
            groups = [(g, w) for g, w in groups if g]  # a tiny file may have gone to validation
            examples = mix_by_weight([g for g, _ in groups], [w for _, w in groups], self.seed)
            self.stats["train_mixed"] = len(examples)
        return super()._tokenized(examples, split)

    # ----- conversations -> tokens and labels -------------------------------------------------
    def tokenize(self, example: dict[str, Any]) -> dict[str, Any]:
        r = render_tokens(self.tokenizer, example["messages"], self.template)
        ids, turns = r.input_ids, r.turn_ids
        cut = len(ids)
        if cut > self.max_length:  # whole turns from the start, else cut the first exchange
            fitting = [e for e in r.turn_ends if e <= self.max_length]
            cut = fitting[-1] if fitting else self.max_length
            ids, turns = ids[:cut], turns[:cut]
        last = max(turns)
        labels = [
            i if k >= 0 and (self.train_on == "all_assistant" or k == last) else IGNORE
            for i, k in zip(ids, turns, strict=True)
        ]
        return {
            "input_ids": ids,
            "labels": labels,
            "keep": any(x != IGNORE for x in labels[1:]),
            "truncated": cut < r.turn_ends[-1],
        }

    def _cache_knobs(self) -> dict[str, Any]:
        return {
            "max_length": self.max_length,
            "pack": self.pack,
            "format": self.format,
            "template": self.template,
            "train_on": self.train_on,
            "qa": self.qa,
        }

    def postprocess(self, dataset, split: str):
        self.stats[f"{split}_examples"] = len(dataset)
        if not self.pack:
            return dataset
        import datasets

        blocks = pack_labelled(
            [list(x) for x in dataset["input_ids"]],
            [list(x) for x in dataset["labels"]],
            self.max_length,
            self._pad_id(),
        )
        self.stats[f"{split}_blocks"] = len(blocks["input_ids"])
        return datasets.Dataset.from_dict(blocks)

    # ----- examples -> batch ------------------------------------------------------------------
    def _pad_id(self) -> int:
        tok = self.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def collate(self, batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Packed: stacked blocks with position ids (no attention_mask: the model builds the
        per-example mask from position resets). Unpacked: right-padded, with an attention_mask
        built from lengths, never from comparing ids to the pad id."""
        if self.pack:
            return {
                k: torch.stack([torch.as_tensor(b[k]) for b in batch])
                for k in ("input_ids", "labels", "position_ids")
            }
        lengths = [len(b["input_ids"]) for b in batch]
        shape = (len(batch), max(lengths))
        out = {
            "input_ids": torch.full(shape, self._pad_id(), dtype=torch.long),
            "labels": torch.full(shape, IGNORE, dtype=torch.long),
            "attention_mask": torch.zeros(shape, dtype=torch.long),
        }
        for row, (b, n) in enumerate(zip(batch, lengths, strict=True)):
            out["input_ids"][row, :n] = torch.as_tensor(b["input_ids"])
            out["labels"][row, :n] = torch.as_tensor(b["labels"])
            out["attention_mask"][row, :n] = 1
        return out
