"""Architectures of the Hub models we ship configs for, so planning never downloads anything.

Values are the models' published `config.json` fields (only those that decide the size)."""

from __future__ import annotations

from typing import Any

_ZIYA2_13B = {
    "model_type": "llama",
    "hidden_size": 5120,
    "intermediate_size": 13824,
    "num_hidden_layers": 40,
    "num_attention_heads": 40,
    "num_key_value_heads": 40,
    "vocab_size": 39424,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": False,
}

KNOWN: dict[str, dict[str, Any]] = {
    "IDEA-CCNL/Ziya2-13B-Base": _ZIYA2_13B,
    "SYNLP/ChiMed-GPT-1.0": _ZIYA2_13B,  # Ziya2-13B after the regime: same shape
    "Qwen/Qwen2.5-0.5B-Instruct": {
        "model_type": "qwen2",
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "max_position_embeddings": 32768,
        "tie_word_embeddings": True,
    },
    "Qwen/Qwen2.5-7B-Instruct": {
        "model_type": "qwen2",
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "vocab_size": 152064,
        "max_position_embeddings": 32768,
        "tie_word_embeddings": False,
    },
}
