"""Building models and tokenizers from config: the embedded tiny default or any HF causal LM.

`ModelFactory` is what `model/*.yaml` instantiates. It holds no weights itself, so configs can
be composed, checked and printed without downloading or allocating anything.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chimed_lit.chat.templates import TEMPLATES
from chimed_lit.io.errors import CheckpointError, ChimedError

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
WEIGHT_FILES += ("pytorch_model.bin.index.json",)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")

_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
}


@dataclass
class ModelFactory:
    """Knobs: `pretrained` (Hub id or local dir; None = random init from `arch`), `arch`
    (LlamaConfig kwargs for random init), `tokenizer` (id/dir; None = the tokenizer of
    `pretrained`, or the demo tokenizer), `vocab_size` (demo tokenizer size), `chat_template`
    (`chimed`, `ziya`, or `tokenizer` to keep the tokenizer's own), `dtype`, `attn_implementation`
    (`sdpa_documents`: sdpa with one causal call per packed document, see document_attention.py),
    `trust_remote_code` (off unless the user sets it), `cache_dir` (demo tokenizer cache),
    `gradient_checkpointing` (recompute activations in backward: ~1/layers of the activation
    memory for ~30% more compute; what makes 13B at 1,024 tokens fit, see `chimed-lit plan`),
    `compile` (`torch.compile` the forward in place, keeping parameter names, so checkpoints
    and exports are unchanged; pays a one-off compile time per new input shape)."""

    name: str = "tiny"
    pretrained: str | None = None
    arch: dict[str, Any] = field(default_factory=dict)
    tokenizer: str | None = None
    vocab_size: int = 4096
    chat_template: str = "chimed"
    dtype: str = "float32"
    attn_implementation: str = "sdpa"
    trust_remote_code: bool = False
    cache_dir: str = "~/.cache/chimed_lit"
    gradient_checkpointing: bool = False
    compile: bool = False

    def attention(self) -> str:
        """`attn_implementation`, made known to transformers first when it is ours (here, at
        load time, so composing and checking configs imports neither torch nor transformers)."""
        from chimed_lit.models.document_attention import NAME, register

        if self.attn_implementation == NAME:
            register()
        return self.attn_implementation

    def load_tokenizer(self):
        """The tokenizer with pad and EOS set and the chat template applied."""
        from transformers import AutoTokenizer

        source = self.tokenizer or self.pretrained
        if source is None:
            from chimed_lit.models.demo_tokenizer import demo_tokenizer

            tok = demo_tokenizer(self.cache_dir, self.vocab_size)
        else:
            _check_source(source)
            with loading(source, "tokenizer"):
                tok = AutoTokenizer.from_pretrained(
                    source, trust_remote_code=self.trust_remote_code
                )
        if tok.eos_token is None:
            raise CheckpointError(f"tokenizer {source!r} has no EOS token; set one before training")
        if tok.pad_token is None:  # pad only fills; losses and attention never read it (see data/)
            tok.pad_token = tok.unk_token or tok.eos_token
        if self.chat_template != "tokenizer":
            tok.chat_template = TEMPLATES[self.chat_template]
        elif not tok.chat_template:
            raise CheckpointError(
                f"tokenizer {source!r} has no chat_template; use chat_template=chimed"
            )
        return tok

    def torch_dtype(self):
        import torch

        return getattr(torch, _DTYPES[self.dtype])

    def load_causal_lm(self, tokenizer, pretrained: str | None = None):
        """`pretrained` (or `self.pretrained`) weights, else a random-init LLaMA from `arch`."""
        import torch
        from transformers import AutoModelForCausalLM, LlamaConfig

        source = pretrained or self.pretrained
        if source is None:
            vocab = _round_up(len(tokenizer), 64)
            config = LlamaConfig(
                vocab_size=vocab,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
                **self.arch,
            )
            config._attn_implementation = self.attention()
            model = AutoModelForCausalLM.from_config(config, dtype=self.torch_dtype())
        else:
            _check_source(source)
            with loading(source, "model"):
                model = AutoModelForCausalLM.from_pretrained(
                    source,
                    dtype=self.torch_dtype(),
                    attn_implementation=self.attention(),
                    trust_remote_code=self.trust_remote_code,
                )
            if model.get_input_embeddings().num_embeddings < len(tokenizer):
                model.resize_token_embeddings(_round_up(len(tokenizer), 64))
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        self._checkpointing(model)
        return model.to(torch.float32) if self.dtype in ("float32", "fp32") else model

    def _checkpointing(self, model) -> None:
        # non-reentrant: works with frozen inputs (LoRA), DDP/FSDP2 and DeepSpeed alike
        if self.gradient_checkpointing:
            kwargs = {"use_reentrant": False}
            if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name
                model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        if self.compile:  # in place: parameter names (checkpoints, exports) stay the same
            model.compile()

    def load_reward_model(self, tokenizer, pretrained: str | None = None):
        """A sequence classifier with one output (the reward), read at the last non-pad token.

        From a causal-LM dir (the SFT output) the backbone weights load and the scalar head starts
        fresh; from a reward-model dir everything loads. transformers' *ForSequenceClassification
        finds the last non-pad token from `pad_token_id`, set here to the tokenizer's."""
        from transformers import AutoConfig, AutoModelForSequenceClassification

        source = pretrained or self.pretrained
        if source is None:
            base = self.load_causal_lm(tokenizer)
            config = base.config
            config.num_labels = 1
            model = AutoModelForSequenceClassification.from_config(config, dtype=self.torch_dtype())
            model.model.load_state_dict(base.model.state_dict())
        else:
            _check_source(source)
            with loading(source, "model"):
                config = AutoConfig.from_pretrained(
                    source, trust_remote_code=self.trust_remote_code
                )
                config.num_labels = 1
                config.pad_token_id = tokenizer.pad_token_id
                model = AutoModelForSequenceClassification.from_pretrained(
                    source,
                    config=config,
                    dtype=self.torch_dtype(),
                    attn_implementation=self.attention(),
                    trust_remote_code=self.trust_remote_code,
                )
        model.config.pad_token_id = tokenizer.pad_token_id
        self._checkpointing(model)
        return model.to(self.torch_dtype())


def _round_up(n: int, k: int) -> int:
    return (n + k - 1) // k * k


def _check_source(source: str) -> None:
    """Fail early and clearly when a local model dir is missing (Hub ids pass through)."""
    looks_local = (
        source.startswith((".", "/", "~")) or os.sep in source.strip("/").split("/", 1)[-1]
    )
    path = Path(source).expanduser()
    if looks_local or path.exists():
        if not path.is_dir():
            raise CheckpointError(f"model directory {source!r} does not exist")
        if not (path / "config.json").is_file() and not (path / "tokenizer_config.json").is_file():
            raise CheckpointError(
                f"{source!r} is not a Hugging Face model directory (no config.json); "
                "pass a stage's hf/ folder or a Hub id"
            )


@contextmanager
def loading(source: str, what: str = "model") -> Iterator[None]:
    """The one place where loading a model or tokenizer dir turns into a `CheckpointError`: the
    errors transformers, safetensors and torch raise while reading `source` (no weights, a
    truncated or corrupt file, a pickle that `weights_only` refuses, a broken or missing
    tokenizer) becomes one message naming the dir and, where it can tell, the file.
    `what` is `model` (config and weights) or `tokenizer`."""
    import torch
    from safetensors import SafetensorError

    try:
        yield
    except (ChimedError, torch.OutOfMemoryError):
        raise
    except (
        OSError,  # no weights, unreadable files
        ValueError,  # JSON syntax, a tokenizer that cannot be built, bad config values
        EOFError,
        RuntimeError,  # torch's zip reader on a truncated .bin
        pickle.UnpicklingError,  # weights_only refused the pickle
        SafetensorError,  # a truncated or corrupt .safetensors
    ) as e:
        raise CheckpointError(load_error_message(source, what, e)) from None


def load_error_message(source: str, what: str, e: BaseException) -> str:
    """What went wrong loading `what` from `source`, naming the dir and the file."""
    path = Path(str(source)).expanduser()
    first = (str(e).strip().splitlines() or [""])[0].strip() or type(e).__name__
    if len(first) > 300:
        first = first[:300] + "..."
    local = path.is_dir()
    present = [
        f
        for f in (WEIGHT_FILES if what == "model" else TOKENIZER_FILES)
        if local and (path / f).is_file()
    ]
    if what == "tokenizer":
        if local and not present:
            return (
                f"tokenizer {source!r} has no tokenizer files (none of "
                f"{', '.join(TOKENIZER_FILES)}): copy them from the base model, or set "
                "model.tokenizer=DIR"
            )
        named = _named_file(path, e, present)
        return f"tokenizer {source!r}: cannot load {named} ({type(e).__name__}: {first})"
    if local and not present:
        return (
            f"model directory {source!r} has no weights (none of {', '.join(WEIGHT_FILES)}): "
            "pass a stage's hf/ folder, or copy the weights there"
        )
    named = _named_file(path, e, present)
    where = f"model directory {source!r}" if local else f"model {source!r}"
    if isinstance(e, pickle.UnpicklingError):
        return (
            f"{where}: {named} holds Python objects that are not tensors and "
            "was refused (loading runs with weights_only=True: a tampered or non-standard file "
            "could run code); re-save it as safetensors from a trusted copy"
        )
    if type(e).__name__ == "SafetensorError":
        return (
            f"{where}: {named} is truncated or corrupt ({first}); "
            "copy it again or re-export the stage"
        )
    return f"{where}: cannot load {named} ({type(e).__name__}: {first})"


def _named_file(path: Path, e: BaseException, present: list[str]) -> str:
    """The file an error names (its message often holds the path), else the likely one."""
    found = re.search(r"[\w./-]*" + re.escape(str(path)) + r"/[\w./-]+", str(e))
    if found:
        return found.group(0).rstrip(".")
    if isinstance(e, pickle.UnpicklingError):
        bins = [f for f in present if f.endswith(".bin")]
        return str(path / bins[0]) if bins else str(path / "pytorch_model.bin")
    if isinstance(e, ValueError) and path.is_dir():  # a JSON file that does not parse
        for f in sorted(path.glob("*.json")):
            try:
                json.loads(f.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, ValueError):
                return str(f)
    shards = sorted(path.glob("*.safetensors")) if path.is_dir() else []
    if type(e).__name__ == "SafetensorError" and shards:
        return ", ".join(str(s) for s in shards)
    return str(path / present[0]) if present else str(path)
