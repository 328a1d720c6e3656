"""The embedded default's tokenizer: byte-level BPE trained on the shipped demo corpus, cached.

Byte-level BPE never emits `<unk>`: characters absent from the demo corpus (real data has many)
fall back to their UTF-8 bytes, so any Chinese text round-trips exactly.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from chimed_lit.chat.templates import CHIMED_TEMPLATE
from chimed_lit.demo import DEMO_DIR

SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "pad_token": "<pad>",
    "unk_token": "<unk>",
}
_FORMAT_VERSION = "1"


def _demo_texts() -> list[str]:
    """Every text of the demo corpus, chat data rendered in the ChiMed template."""
    texts: list[str] = []
    for path in sorted(DEMO_DIR.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            if "text" in rec:
                texts.append(rec["text"])
            for m in rec.get("messages", []):
                prefix = {"user": "[human]:", "assistant": "[bot]:"}.get(m["role"], "")
                texts.append(prefix + m["content"])
            for key in ("prompt", "chosen", "rejected"):
                if key in rec:
                    texts.append(("[human]:" if key == "prompt" else "[bot]:") + rec[key])
    return texts


def _fingerprint(vocab_size: int) -> str:
    h = hashlib.sha256(f"{_FORMAT_VERSION}:{vocab_size}:{CHIMED_TEMPLATE}".encode())
    for path in sorted(DEMO_DIR.glob("*.jsonl")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def train_demo_tokenizer(vocab_size: int = 4096):
    """Train the byte-level BPE on the demo corpus and wrap it as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_demo_texts(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL_TOKENS)
    fast.chat_template = CHIMED_TEMPLATE
    fast.model_max_length = 4096
    return fast


def demo_tokenizer(cache_dir: str | os.PathLike, vocab_size: int = 4096):
    """The demo tokenizer, trained on first use and cached under `cache_dir` (atomic write)."""
    from transformers import AutoTokenizer

    target = Path(cache_dir).expanduser() / "tokenizers" / f"demo-{_fingerprint(vocab_size)}"
    if not (target / "tokenizer.json").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
        train_demo_tokenizer(vocab_size).save_pretrained(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process won the race: theirs is identical
            shutil.rmtree(tmp, ignore_errors=True)
    return AutoTokenizer.from_pretrained(str(target))
