"""`PreferenceDataModule`: pairs of responses to one prompt, the better one first, for the reward model.

Record shapes (told apart by their keys, record by record):
- `{question, response_chosen, response_rejected}` (MedicalGPT's reward data);
- `{prompt, chosen, rejected}`: `prompt` a string (one user turn) or a messages list
  (`{role, content}`, ending with a user turn);
- `{conversations, chosen, rejected}`: the prompt in ShareGPT form (`{from, value}`, optional
  system turn first, ending with a human turn), MedicalGPT's current reward/DPO format;
- `{prompt, responses: [...], ranks: [...]}`: a ranked list, lower rank is better, expanded into
  every ordered pair of differently ranked responses (n distinct ranks: n(n-1)/2 pairs), as
  InstructGPT did. Pairs are made after the train/validation split, so the pairs of one prompt
  never straddle it.
An optional `system` string adds a system turn before a string or ShareGPT prompt.

What the reward model reads: exactly `render_tokens(tok, prompt + [assistant response])` with
`template` (chimed|ziya|tokenizer), i.e. the tokens the policy's rendering gives, the response's
EOS included, so the reward is read at the token where a generated answer ends (template text
after the end-of-turn token, such as ChatML's newline, is not part of it).

Truncation (`max_length`): the response and its EOS are kept whole and the prompt is cut from
the left; the same number of leading tokens is removed from both sides of a pair, so chosen and
rejected are judged on the same context. Such pairs count as `{split}_truncated`. A pair where
not even one prompt token fits beside the longer response is dropped (`{split}_dropped`); more
than `data.max_dropped_fraction` of a split dropped is a `DataError` (the base's rule).

Bad pairs raise `FieldError` (the base names file and line): a missing or non-text response,
an empty one, chosen identical to rejected, an empty or malformed prompt, ranks that do not
match the responses. Stats: the base's plus `{split}_pairs` and `{split}_examples`.
"""

from __future__ import annotations

import logging
from itertools import combinations
from typing import Any

import torch

from chimed_lit.chat.render import TEMPLATE_CHOICES, render_tokens
from chimed_lit.data.base import BaseDataModule, FieldError
from chimed_lit.data.conversation import to_messages
from chimed_lit.data.packing import pack_sequences
from chimed_lit.io.errors import ConfigError

log = logging.getLogger(__name__)
Message = dict[str, str]
# (prompt key, chosen key, rejected key) of the pairwise shapes, in detection order
PAIR_KEYS = (
    ("question", "response_chosen", "response_rejected"),
    ("conversations", "chosen", "rejected"),
    ("prompt", "chosen", "rejected"),
)


def detect_shape(data: dict[str, Any]) -> str:
    """`ranked`, `question`, `conversations` or `prompt`, from the record's keys."""
    if "responses" in data or "ranks" in data:
        return "ranked"
    for keys in PAIR_KEYS:
        if keys[0] in data:
            return keys[0]
    raise FieldError(
        "prompt",
        f"cannot tell the preference format from the keys {sorted(data)[:8]}; "
        "expected question/response_chosen/response_rejected, "
        "prompt/chosen/rejected, conversations/chosen/rejected or "
        "prompt/responses/ranks",
    )


def parse_preference(data: dict[str, Any]) -> dict[str, Any]:
    """One raw record as `{"prompt": messages, "pairs": [[chosen, rejected], ...]}`."""
    shape = detect_shape(data)
    if shape == "ranked":
        prompt = prompt_messages(data, "prompt")
        return {"prompt": prompt, "pairs": ranked_pairs(data)}
    p_key, c_key, r_key = next(k for k in PAIR_KEYS if k[0] == shape)
    chosen, rejected = _response(data, c_key), _response(data, r_key)
    if chosen.strip() == rejected.strip():
        raise FieldError(r_key, f"identical to {c_key}: a pair must differ to teach a preference")
    return {"prompt": prompt_messages(data, p_key), "pairs": [[chosen, rejected]]}


def prompt_messages(data: dict[str, Any], key: str) -> list[Message]:
    """The prompt turns in normal form (see `conversation.py`), ending with a user turn."""
    if key not in data:
        raise FieldError(key, f"missing (record has {sorted(data)[:8]})")
    value = data[key]
    if isinstance(value, str):
        if not value.strip():
            raise FieldError(key, "empty prompt")
        system = data.get("system")
        if system not in (None, "") and not isinstance(system, str):
            raise FieldError("system", f"expected text, got {type(system).__name__}")
        head = [{"role": "system", "content": system}] if system else []
        return [*head, {"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise FieldError(key, "expected a non-empty string or list of turns")
    sharegpt = isinstance(value[0], dict) and "from" in value[0]
    last = value[-1]
    role = (last.get("from") if sharegpt else last.get("role")) if isinstance(last, dict) else None
    if role not in ("human", "user"):
        raise FieldError(f"{key}[{len(value) - 1}]", "the prompt must end with a user turn")
    # validated as a conversation closed by a placeholder answer, which is then removed
    if sharegpt:
        record = {"conversations": [*value, {"from": "gpt", "value": "-"}]}
        if data.get("system") not in (None, ""):
            record["system"] = data["system"]
        fmt = "sharegpt"
    else:
        record, fmt = {"messages": [*value, {"role": "assistant", "content": "-"}]}, "messages"
    try:
        messages = to_messages(record, fmt).messages
    except FieldError as e:
        container = "conversations" if sharegpt else "messages"
        raise FieldError(e.field.replace(container, key, 1), str(e)) from None
    return messages[:-1]


def ranked_pairs(data: dict[str, Any]) -> list[list[str]]:
    """Every (better, worse) pair of a ranked list; equal ranks give no pair."""
    for key in ("responses", "ranks"):
        if not isinstance(data.get(key), list):
            raise FieldError(key, "missing or not a list")
    responses, ranks = data["responses"], data["ranks"]
    if len(responses) != len(ranks):
        raise FieldError("ranks", f"{len(ranks)} ranks for {len(responses)} responses")
    if len(responses) < 2:
        raise FieldError("responses", "a ranked list needs at least two responses")
    texts = [_text(r, f"responses[{i}]") for i, r in enumerate(responses)]
    for i, r in enumerate(ranks):
        if isinstance(r, bool) or not isinstance(r, (int, float)):
            raise FieldError(f"ranks[{i}]", f"expected a number, got {type(r).__name__}")
    pairs = []
    for i, j in combinations(range(len(texts)), 2):
        if ranks[i] == ranks[j]:
            continue
        better, worse = (i, j) if ranks[i] < ranks[j] else (j, i)
        if texts[better].strip() == texts[worse].strip():
            raise FieldError(
                f"responses[{worse}]", f"identical to responses[{better}] but ranked differently"
            )
        pairs.append([texts[better], texts[worse]])
    if not pairs:
        raise FieldError("ranks", "all responses share one rank: no preference to learn")
    return pairs


def _response(data: dict[str, Any], key: str) -> str:
    if key not in data:
        raise FieldError(key, f"missing (record has {sorted(data)[:8]})")
    return _text(data[key], key)


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise FieldError(field, f"expected text, got {type(value).__name__}")
    if not value.strip():
        raise FieldError(field, "empty response")
    return value


class PreferenceDataModule(BaseDataModule):
    """Knobs (besides the base's): `template` (chimed|ziya|tokenizer), as the SFT and PPO stages
    render; `max_length` bounds each side of a pair. `batch_size` counts pairs: a batch holds
    2 x batch_size sequences. `pack`: padding-free batches (the reward stage's default): a
    batch's sequences are laid side by side in rows of `max_length` tokens with position ids
    restarting per sequence (see `data/packing.py`), instead of each padded to the longest."""

    demo_files = ("preference.jsonl", "preference_val.jsonl")
    example_noun = "pairs"
    drop_reason = (
        "have a response that alone fills data.max_length={max_length} (no prompt token fits)"
    )

    def __init__(self, template: str = "chimed", pack: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.pack = pack
        if template not in TEMPLATE_CHOICES:
            raise ConfigError(
                f"data.template must be one of {', '.join(TEMPLATE_CHOICES)}, got {template!r}"
            )
        self.template = template

    def parse(self, data: dict[str, Any]) -> dict[str, Any]:
        return parse_preference(data)

    def _tokenized(self, examples: list[dict[str, Any]], split: str):
        pairs = [
            {"prompt": e["prompt"], "chosen": c, "rejected": r}
            for e in examples
            for c, r in e["pairs"]
        ]
        self.stats[f"{split}_pairs"] = len(pairs)
        return super()._tokenized(pairs, split)

    def postprocess(self, dataset, split: str):
        self.stats[f"{split}_examples"] = len(dataset)
        return dataset

    def _cache_knobs(self) -> dict[str, Any]:
        return {"max_length": self.max_length, "template": self.template}  # `pack` acts in collate

    def tokenize(self, example: dict[str, Any]) -> dict[str, Any]:
        """Both sides rendered whole; the prompt cut from the left by one shared amount."""
        sides = {}
        for side in ("chosen", "rejected"):
            messages = [*example["prompt"], {"role": "assistant", "content": example[side]}]
            r = render_tokens(self.tokenizer, messages, self.template)
            last = len(r.turn_ends) - 1  # the response is the last assistant turn
            start = r.turn_ids.index(last)  # its first token
            sides[side] = (r.input_ids[: r.turn_ends[last]], start)
        cut = max(0, max(len(ids) for ids, _ in sides.values()) - self.max_length)
        keep = all(cut < start for _, start in sides.values())
        out: dict[str, Any] = {"keep": keep, "truncated": keep and cut > 0}
        for side, (ids, start) in sides.items():
            out[f"{side}_ids"] = ids[cut:] if keep else []
            out[f"{side}_response_len"] = len(ids) - start
        return out

    def _pad_id(self) -> int:
        tok = self.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def collate(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        """One batch for one forward pass: the chosen sequences, then the rejected ones in the
        same order (sequence i and n_pairs + i are a pair); `response_lengths` in tokens (EOS
        included) for the length probe. Unpacked: one right-padded row per sequence, with
        `attention_mask` from lengths (never from comparing ids to the pad id, which may equal
        EOS). Packed: `input_ids`/`position_ids` rows holding several sequences each and `ends`,
        the flat index (row * width + column) of each sequence's last token."""
        rows = [b["chosen_ids"] for b in batch] + [b["rejected_ids"] for b in batch]
        lengths = [len(r) for r in rows]
        response_lengths = [int(b["chosen_response_len"]) for b in batch] + [
            int(b["rejected_response_len"]) for b in batch
        ]
        out = {
            "response_lengths": torch.tensor(response_lengths),
            "n_pairs": len(batch),
            "seq_lengths": torch.tensor(lengths),
        }
        if self.pack:
            return {**out, **pack_sequences(rows, max(self.max_length, *lengths), self._pad_id())}
        shape = (len(rows), max(lengths))
        input_ids = torch.full(shape, self._pad_id(), dtype=torch.long)
        attention_mask = torch.zeros(shape, dtype=torch.long)
        for i, (row, n) in enumerate(zip(rows, lengths, strict=True)):
            input_ids[i, :n] = torch.as_tensor(row)
            attention_mask[i, :n] = 1
        return {**out, "input_ids": input_ids, "attention_mask": attention_mask}
