"""Inference on any HF-format model dir: loading, prompt rendering and batched generation.

Prompts are rendered by the same function training used (`chat/render.py`), so a model sees
at inference exactly the template it was trained on. `generate` is the one generation path:
`chimed-lit generate`, `chat`, PPO rollouts, rejection sampling and evaluation all call it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from chimed_lit.chat.render import render_prompt, resolve_template
from chimed_lit.inference import decoding
from chimed_lit.inference.batching import pad_id, pad_rows
from chimed_lit.io.errors import CheckpointError


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


def load_for_inference(
    pretrained: str,
    dtype: str = "float32",
    trust_remote_code: bool = False,
    device: str | None = None,
):
    """Model (eval mode) and tokenizer from an HF dir or Hub id, with a clear error if missing."""
    from chimed_lit.models.factory import ModelFactory

    factory = ModelFactory(
        pretrained=pretrained,
        dtype=dtype,
        chat_template="tokenizer",
        trust_remote_code=trust_remote_code,
    )
    try:
        tok = factory.load_tokenizer()
    except CheckpointError as e:
        if "no chat_template" not in str(e):
            raise
        tok = ModelFactory(
            pretrained=pretrained, trust_remote_code=trust_remote_code
        ).load_tokenizer()
    model = factory.load_causal_lm(tok).eval()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device), tok


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: list[list[int]],
    sampling: Sampling,
    streamer: Any = None,
    with_logps: bool = False,
) -> list[dict[str, Any]]:
    """Generate for token-id prompts, left-padded in one batch. Each result has the response
    `text`, its token `ids` (EOS excluded) and `finished` (the model produced EOS). Runs the
    lean loop of `decoding.py` where it applies, HF `generate` otherwise.

    `with_logps`: each result also has `logps`, the log-probability of each response token
    (and of the EOS when finished) under the sampling distribution (logits / temperature), read
    from the logits generation computed anyway, so PPO needs no second forward for them."""
    pad = pad_id(tokenizer)
    ids, mask = pad_rows(prompts, pad, left=True, device=next(model.parameters()).device)
    new, logps = decoding.new_tokens(
        model,
        ids,
        mask,
        **asdict(sampling),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=pad,
        with_logps=with_logps,
        streamer=streamer,
    )
    results = []
    for i, row in enumerate(new.tolist()):
        finished = tokenizer.eos_token_id in row
        body = row[: row.index(tokenizer.eos_token_id)] if finished else row
        results.append(
            {
                "text": tokenizer.decode(body, skip_special_tokens=True),
                "ids": body,
                "finished": finished,
            }
        )
        if logps is not None:
            results[-1]["logps"] = logps[i, : len(body) + finished]
    return results


def render_prompts(
    tokenizer, conversations: list[list[dict[str, str]]], template: str, key: str = "template"
) -> list[list[int]]:
    """`render_prompt` of each conversation; a bad `template` is reported as `key=...`."""
    resolve_template(tokenizer, template, key)
    return [render_prompt(tokenizer, msgs, template) for msgs in conversations]
