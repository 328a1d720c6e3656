"""Inference on any HF-format model dir: loading, prompt rendering and batched generation.

Prompts are rendered by the same function training used (`data/rendering.py`), so a model sees
at inference exactly the template it was trained on. Used by `chimed-lit generate`, `chat`,
PPO rollouts and rejection sampling.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from chimed_lit import decoding
from chimed_lit.data.base import FieldError
from chimed_lit.data.conversation import to_messages
from chimed_lit.data.rendering import render_prompt
from chimed_lit.errors import CheckpointError


@dataclass
class Sampling:
    """Sampling knobs (greedy when `do_sample` is false). `compile`: the decode step runs
    compiled over a static KV cache (decoding.py): a one-off compile per batch size, then faster
    decoding; for long PPO runs."""

    max_new_tokens: int = 128
    do_sample: bool = False
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 0
    repetition_penalty: float = 1.0
    compile: bool = False


def load_for_inference(pretrained: str, dtype: str = "float32", trust_remote_code: bool = False,
                       device: str | None = None):
    """Model (eval mode) and tokenizer from an HF dir or Hub id, with a clear error if missing."""
    from chimed_lit.models import ModelFactory

    factory = ModelFactory(pretrained=pretrained, dtype=dtype, chat_template="tokenizer",
                           trust_remote_code=trust_remote_code)
    try:
        tok = factory.load_tokenizer()
    except CheckpointError as e:
        if "no chat_template" not in str(e):
            raise
        tok = ModelFactory(pretrained=pretrained, trust_remote_code=trust_remote_code).load_tokenizer()
    model = factory.load_causal_lm(tok).eval()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device), tok


def prompt_messages(record: dict[str, Any]) -> list[dict[str, str]]:
    """The conversation before the reply to generate: `{"prompt": str}`, `messages`,
    `conversations`, or any SFT format (a final assistant turn is dropped)."""
    prompt = record.get("prompt")
    if isinstance(prompt, str):
        if not prompt.strip():
            raise FieldError("prompt", "empty text")
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, list):
        record = {"messages": prompt}
    msgs = record.get("messages")
    if isinstance(msgs, list) and msgs and isinstance(msgs[-1], dict) and msgs[-1].get("role") == "user":
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or not isinstance(m.get("content"), str) or not m["content"].strip():
                raise FieldError(f"messages[{i}].content", "missing or empty")
        return [dict(role=m["role"], content=m["content"]) for m in msgs]
    messages = to_messages(record).messages
    while messages and messages[-1]["role"] == "assistant":
        messages = messages[:-1]
    if not messages:
        raise FieldError("messages", "no user turn to answer")
    return messages


@torch.no_grad()
def generate(model, tokenizer, prompts: list[list[int]], sampling: Sampling,
             streamer: Any = None, with_logps: bool = False) -> list[dict[str, Any]]:
    """Generate for token-id prompts, left-padded in one batch. Each result has the response
    `text`, its token `ids` (EOS excluded) and `finished` (the model produced EOS). Runs the
    lean loop of `decoding.py` where it applies, HF `generate` otherwise.

    `with_logps`: each result also has `logps`, the log-probability of each response token
    (and of the EOS when finished) under the sampling distribution (logits / temperature), read
    from the logits generation computed anyway, so PPO needs no second forward for them."""
    pad = tokenizer.pad_token_id
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
    device = next(model.parameters()).device
    new, logps = decoding.new_tokens(model, ids.to(device), mask.to(device),
                                     **asdict(sampling),
                                     eos_token_id=tokenizer.eos_token_id, pad_token_id=pad,
                                     with_logps=with_logps, streamer=streamer)
    results = []
    for i, row in enumerate(new.tolist()):
        finished = tokenizer.eos_token_id in row
        body = row[: row.index(tokenizer.eos_token_id)] if finished else row
        results.append({"text": tokenizer.decode(body, skip_special_tokens=True), "ids": body,
                        "finished": finished})
        if logps is not None:
            results[-1]["logps"] = logps[i, : len(body) + finished]
    return results


def render_prompts(tokenizer, conversations: list[list[dict[str, str]]], template: str
                   ) -> list[list[int]]:
    return [render_prompt(tokenizer, msgs, template) for msgs in conversations]
