"""A lean KV-cache sampling loop for left-padded batches: what `generation.generate` runs.

HF `generate` wraps each decode step in logits processors, stopping criteria and bookkeeping
built for every decoding strategy; for the few knobs of `Sampling` that costs about a quarter
of a PPO rollout on CPU (measured in docs/performance.md), and its multinomial draws a random
number per vocabulary entry. This loop does only what sampling needs: one prefill that keeps
the last position's logits, then per step temperature -> top-k -> top-p (HF's order and
semantics), one uniform draw per row through the inverse CDF, EOS bookkeeping, and the sampled
token's log-probability under logits / temperature for PPO.

It runs models whose forward takes a KV cache object, `position_ids` and `logits_to_keep`:
every transformers-native causal LM, also under peft (the cache goes in as `cache`, or as
`past_key_values` where a model class still names it so). Other models (remote code) and a
`repetition_penalty` go through HF `generate`: `new_tokens` picks the path (`supports`).

`compile=True` runs the decode step through `torch.compile` over a static KV cache whose length
is the prompt plus the new tokens rounded up to `CACHE_BUCKET`, so every step has the same
shapes and one compile serves every batch of the same size (a new batch size or bucket compiles
again). On CPU that takes a C++ compiler and ~20 s once for a 7M model, and then decodes
~35% faster (docs/performance.md): worth it for PPO runs of many steps, not for a short try.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import torch

from chimed_lit.io.errors import ConfigError


def _base(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model under a peft wrapper (the model itself otherwise)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def supports(model: torch.nn.Module, repetition_penalty: float) -> bool:
    """Whether `sample` can run `model`: a transformers-native causal LM (peft-wrapped or
    not) and no repetition penalty, the one `Sampling` knob this loop leaves to HF."""
    if repetition_penalty != 1.0:
        return False
    return type(_base(model)).__module__.startswith("transformers.models.")


def _cache_kwarg(model: torch.nn.Module) -> str:
    """The forward's name for the KV cache: `cache` (transformers >= 5.24), or the older
    `past_key_values` that some model classes still take."""
    params = inspect.signature(type(_base(model)).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _check_temperature(temperature: float) -> None:
    if temperature <= 0:
        raise ConfigError(
            f"sampling.temperature must be > 0 (got {temperature}); "
            "use do_sample=false for greedy decoding"
        )


def warp(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """Logits with temperature applied and tokens outside top-k / the top-p nucleus set to
    -inf, as HF's Temperature -> TopK -> TopP warpers do (top-p keeps a token while the mass
    of the tokens ranked above it is below `top_p`, so at least one token stays)."""
    _check_temperature(temperature)
    if temperature != 1.0:
        logits = logits / temperature
    if top_k and 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        above = probs.cumsum(-1) - probs  # mass ranked strictly above each token
        drop = (above >= top_p).scatter(-1, order, above >= top_p)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def draw(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row from softmax(logits), by the inverse CDF: one uniform number per
    row (torch.multinomial's CPU path draws one per vocabulary entry)."""
    cdf = logits.softmax(-1).cumsum(-1)
    total = cdf[..., -1:]
    u = torch.rand(total.shape, device=cdf.device, generator=generator, dtype=cdf.dtype) * total
    u = torch.minimum(u, torch.nextafter(total, torch.zeros_like(total)))  # rounding: u < total
    return torch.searchsorted(cdf, u, right=True)  # the first entry whose CDF exceeds u


CACHE_BUCKET = 128  # static-cache lengths are multiples of this: few distinct shapes to compile


def _decode_step(
    model: torch.nn.Module,
    token: torch.Tensor,
    mask: torch.Tensor,
    positions: torch.Tensor,
    cache: dict[str, Any],
) -> torch.Tensor:
    return model(
        input_ids=token, attention_mask=mask, position_ids=positions, use_cache=True, **cache
    ).logits[:, -1]


def _can_compile(model: torch.nn.Module, device: torch.device) -> bool:
    """Whether `compile=True` can run: a model class transformers marks as compilable with a
    static cache (else the eager loop runs, with a warning), and on CPU a C++ compiler for
    inductor's kernels (else a ConfigError, rather than a failure deep inside the compile)."""
    import os
    import shutil
    import warnings

    if not getattr(_base(model), "_can_compile_fullgraph", False):
        warnings.warn(
            f"sampling.compile: {type(_base(model)).__name__} does not support a static "
            "KV cache under torch.compile; decoding eagerly",
            stacklevel=3,
        )
        return False
    compilers = [os.environ.get("CXX", ""), "g++", "c++", "clang++"]
    if device.type == "cpu" and not any(c and shutil.which(c) for c in compilers):
        raise ConfigError(
            "sampling.compile=true needs a C++ compiler on CPU (g++ or clang++, or "
            "$CXX) for torch.compile's kernels; install one or set it to false"
        )
    return True


@functools.cache
def _compiled_decode_step() -> Any:
    """One compiled `_decode_step` for the process, made on first use so importing this module
    does not load dynamo (dynamo guards on the model it is given, so each model gets its own
    graph): static shapes, no recompiles between equal batches."""
    return torch.compile(_decode_step, dynamic=False)


@torch.no_grad()
def sample(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    max_new_tokens: int,
    do_sample: bool,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    eos_token_id: int | None,
    pad_token_id: int,
    with_logps: bool = False,
    streamer: Any = None,
    compile: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """New tokens [B, T] for left-padded `input_ids` (rows that ended carry `pad_token_id`
    after their EOS; T < max_new_tokens when every row ended early) and, `with_logps`, each
    token's log-probability under logits / temperature (greedy: under the raw logits).
    `compile`: the decode step compiled over a static cache (module docstring)."""
    from transformers import DynamicCache, StaticCache

    if do_sample:
        _check_temperature(temperature)
    batch, width = input_ids.shape
    mask = attention_mask.long()
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    compile = compile and _can_compile(model, input_ids.device)
    if compile:  # the mask spans the whole static cache; columns turn on as tokens arrive
        length = -(-(width + max_new_tokens) // CACHE_BUCKET) * CACHE_BUCKET
        cache = {_cache_kwarg(model): StaticCache(config=model.config, max_cache_len=length)}
        mask = torch.cat([mask, mask.new_zeros(batch, length - width)], 1)
        step_fn = _compiled_decode_step()
    else:
        cache = {_cache_kwarg(model): DynamicCache(config=model.config)}
        step_fn = _decode_step
    if streamer is not None:
        streamer.put(input_ids.cpu())
    logits = model(
        input_ids=input_ids,
        attention_mask=mask,
        position_ids=positions,
        use_cache=True,
        logits_to_keep=1,
        **cache,
    ).logits[:, -1]
    next_pos = positions[:, -1:] + 1
    done = torch.zeros(batch, 1, dtype=torch.bool, device=input_ids.device)
    ones = torch.ones(batch, 1, dtype=mask.dtype, device=mask.device)
    tokens: list[torch.Tensor] = []
    logps: list[torch.Tensor] = []
    for step in range(max_new_tokens):
        logits = logits.float()
        if do_sample:
            scaled = logits / temperature if temperature != 1.0 else logits
            token = draw(warp(scaled, 1.0, top_k, top_p))  # already scaled
        else:
            scaled = logits
            token = logits.argmax(-1, keepdim=True)
        token = token.masked_fill(done, pad_token_id)
        if with_logps:
            logps.append(torch.log_softmax(scaled, -1).gather(-1, token))
        tokens.append(token)
        if streamer is not None:
            streamer.put(token.cpu())
        if eos_token_id is not None:
            done = done | (token == eos_token_id)
        if step == max_new_tokens - 1 or bool(done.all()):
            break
        if compile:
            mask[:, width + step] = 1  # in place: the mask already spans the whole cache
        else:
            mask = torch.cat([mask, ones], 1)
        logits = step_fn(model, token, mask, next_pos, cache)
        next_pos = next_pos + 1
    if streamer is not None:
        streamer.end()
    empty = input_ids.new_zeros(batch, 0)
    new = torch.cat(tokens, 1) if tokens else empty
    out_logps = (torch.cat(logps, 1) if logps else empty.float()) if with_logps else None
    return new, out_logps


def new_tokens(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    max_new_tokens: int,
    do_sample: bool,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
    eos_token_id: int | None,
    pad_token_id: int,
    with_logps: bool = False,
    streamer: Any = None,
    compile: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`sample`'s result for any causal LM: the lean loop where `supports` says so, else HF
    `generate` (remote-code models, a repetition penalty) with the log-probs read from the
    logits it returns (`compile` applies to the lean loop only)."""
    if supports(model, repetition_penalty):
        return sample(
            model,
            input_ids,
            attention_mask,
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
            with_logps=with_logps,
            streamer=streamer,
            compile=compile,
        )
    knobs: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "do_sample": do_sample,
        "repetition_penalty": repetition_penalty,
    }
    if do_sample:
        knobs.update(temperature=temperature, top_p=top_p, top_k=top_k)
    extra = {"output_logits": True, "return_dict_in_generate": True} if with_logps else {}
    out = model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        pad_token_id=pad_token_id,
        eos_token_id=eos_token_id,
        streamer=streamer,
        **knobs,
        **extra,
    )
    new = (out.sequences if with_logps else out)[:, input_ids.shape[1] :]
    if not with_logps:
        return new, None
    scale = temperature if do_sample and temperature != 1.0 else 1.0
    # one step at a time, so no [batch, new tokens, vocab] tensor is built
    cols = [
        torch.log_softmax(step.float() / scale, -1).gather(-1, new[:, t, None]).squeeze(-1)
        for t, step in enumerate(out.logits)
    ]
    return new, torch.stack(cols, 1)
