"""Building models and tokenizers from config: the embedded tiny default or any HF causal LM.

`ModelFactory` is what `model/*.yaml` instantiates. It holds no weights itself, so configs can
be composed, checked and printed without downloading or allocating anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chimed_lit.chat.templates import TEMPLATES
from chimed_lit.io.errors import CheckpointError

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
            tok = AutoTokenizer.from_pretrained(source, trust_remote_code=self.trust_remote_code)
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
            config = AutoConfig.from_pretrained(source, trust_remote_code=self.trust_remote_code)
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
