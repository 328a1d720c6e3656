"""Evaluation's model calls: greedy generation cut at stop strings, and log-likelihoods of
continuations and of choices.

Works with any HF causal LM and tokenizer. Generation goes through `inference.generation`, the
path every command generates with (left padding, the lean decoding loop or HF `generate`);
what is eval's own is the text in and out: prompts are encoded from the rendered text and
replies cut at the first stop string. Scoring RIGHT-pads and reads log-probabilities at each
sequence's own positions. Prompts longer than the model's window lose their beginning, never
their end (the end holds the question). All under no_grad.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from chimed_lit.inference.batching import batched, pad_id, pad_rows
from chimed_lit.inference.generation import Sampling
from chimed_lit.inference.generation import generate as generate_ids


def _progress(total: int, enabled: bool, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, leave=False)


def max_context(model: Any, default: int = 2048) -> int:
    return int(getattr(model.config, "max_position_embeddings", None) or default)


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


def encode(tokenizer: Any, text: str, add_special_tokens: bool = False) -> list[int]:
    """Ids of rendered text as training tokenized it (`apply_chat_template` adds no special
    tokens beyond what the template writes; a LLaMA tokenizer's own BOS would be one token the
    model never saw before a prompt in training)."""
    return list(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    cut = len(text)
    for stop in stops:
        at = text.find(stop)
        if at != -1:
            cut = min(cut, at)
    return text[:cut].strip()


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 128,
    batch_size: int = 8,
    max_prompt_tokens: int | None = None,
    stops: Sequence[str] = ("</s>", "[human]:", "[bot]:"),
    progress: bool = False,
    desc: str = "generate",
) -> list[str]:
    """Greedy continuations of each rendered prompt, `batch_size` at a time through
    `inference.generation.generate`, decoded and cut at the first stop string."""
    limit = max_prompt_tokens or max(8, max_context(model) - max_new_tokens)
    greedy = Sampling(max_new_tokens=max_new_tokens, do_sample=False)
    outputs: list[str] = []
    bar = _progress(len(prompts), progress, desc)
    for chunk in batched(prompts, batch_size):
        rows = [encode(tokenizer, p)[-limit:] for p in chunk]
        for reply in generate_ids(model, tokenizer, rows, greedy):
            outputs.append(cut_at_stop(reply["text"], stops))
        bar.update(len(chunk))
    bar.close()
    return outputs


def split_continuation(
    tokenizer: Any, context: str, continuation: str
) -> tuple[list[int], list[int]]:
    """Token ids of (context, continuation) as the model would see `context + continuation`:
    encoded together and split where the context ends, so merges across the boundary
    (e.g. a leading space) are tokenised as in running text."""
    ctx = encode(tokenizer, context)
    whole = encode(tokenizer, context + continuation)
    if len(whole) > len(ctx) and whole[: len(ctx)] == ctx:
        return ctx, whole[len(ctx) :]
    return ctx, encode(tokenizer, continuation, add_special_tokens=False)


@torch.no_grad()
def continuation_logprobs(
    model: Any,
    tokenizer: Any,
    contexts: Sequence[str],
    continuations: Sequence[str],
    *,
    batch_size: int = 8,
    progress: bool = False,
    desc: str = "score",
) -> list[tuple[float, int]]:
    """(sum of log p(continuation tokens | context), number of tokens) per pair."""
    if len(contexts) != len(continuations):
        raise ValueError("contexts and continuations differ in length")
    limit = max_context(model)
    pairs = []
    for ctx, cont in zip(contexts, continuations, strict=True):
        c_ids, x_ids = split_continuation(tokenizer, ctx, cont)
        if not x_ids or not c_ids:
            raise ValueError(f"empty context or continuation: {ctx[:20]!r} / {cont!r}")
        keep = max(1, limit - len(x_ids))
        pairs.append((c_ids[-keep:], x_ids))
    device = _device(model)
    pad = pad_id(tokenizer)
    results: list[tuple[float, int]] = []
    bar = _progress(len(pairs), progress, desc)
    for chunk in batched(pairs, batch_size):
        rows = [c + x for c, x in chunk]
        ids, mask = pad_rows(rows, pad, left=False, device=device)
        logits = model(input_ids=ids, attention_mask=mask).logits
        for i, (c, x) in enumerate(chunk):
            # only the continuation's positions: a full-vocabulary softmax over the whole
            # sequence would cost batch x length x vocabulary floats
            logp = torch.log_softmax(logits[i, len(c) - 1 : len(c) + len(x) - 1].float(), -1)
            target = torch.tensor(x, device=device)
            results.append((float(logp.gather(-1, target[:, None]).sum()), len(x)))
        bar.update(len(chunk))
    bar.close()
    return results


@torch.no_grad()
def choice_logprobs(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    choices: Sequence[Sequence[str]],
    *,
    batch_size: int = 8,
    progress: bool = False,
    desc: str = "choices",
) -> list[list[float]]:
    """log p(choice | prompt) for each prompt's choices (e.g. option letters).

    When every choice is ONE token after its prompt, one forward per prompt reads them all
    from the next-token distribution; otherwise each (prompt, choice) pair is scored."""
    splits = [
        [split_continuation(tokenizer, p, c) for c in cs]
        for p, cs in zip(prompts, choices, strict=True)
    ]
    single = all(
        len(x) == 1 and all(s[0] == row[0][0] for s in row) for row in splits for _, x in row
    )
    if not single:
        flat_ctx = [p for p, cs in zip(prompts, choices, strict=True) for _ in cs]
        flat_cont = [c for cs in choices for c in cs]
        scored = continuation_logprobs(
            model,
            tokenizer,
            flat_ctx,
            flat_cont,
            batch_size=batch_size,
            progress=progress,
            desc=desc,
        )
        out, i = [], 0
        for cs in choices:
            out.append([s for s, _ in scored[i : i + len(cs)]])
            i += len(cs)
        return out
    limit = max_context(model) - 1
    device = _device(model)
    pad = pad_id(tokenizer)
    results: list[list[float]] = []
    bar = _progress(len(prompts), progress, desc)
    rows_all = [(row[0][0][-limit:], [x[0] for _, x in row]) for row in splits]
    for chunk in batched(rows_all, batch_size):
        ids, mask = pad_rows([c for c, _ in chunk], pad, left=False, device=device)
        logits = model(input_ids=ids, attention_mask=mask).logits
        last = mask.sum(1) - 1
        logp = torch.log_softmax(logits[torch.arange(len(chunk), device=device), last].float(), -1)
        for i, (_, targets) in enumerate(chunk):
            results.append([float(logp[i, t]) for t in targets])
        bar.update(len(chunk))
    bar.close()
    return results
