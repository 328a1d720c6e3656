"""`chimed-lit generate` and `chimed-lit chat`: inference on any HF-format model dir."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from chimed_lit.io.errors import ConfigError, DataError


def _compose(config_name: str, args: list[str]) -> DictConfig:
    from hydra import compose

    from chimed_lit.cli.argv import split_argv
    from chimed_lit.cli.overrides import check_overrides
    from chimed_lit.run.compose import composing

    line = split_argv(list(args))
    if line.flags:
        raise ConfigError(
            f"unknown flag {line.flags[0]!r}: `chimed-lit {config_name}` takes key=value "
            f"overrides only (see configs/{config_name}.yaml)"
        )
    overrides = check_overrides(line.overrides, config_name)
    with composing():
        cfg = compose(config_name=config_name, overrides=overrides)
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError([f"{k} is required (e.g. {k}=...)" for k in missing])
    return cfg


def _sampling(cfg: DictConfig):
    from chimed_lit.inference.generation import Sampling

    return Sampling(**OmegaConf.to_container(cfg.sampling, resolve=True))


def generate_command(args: list[str]) -> int:
    """Read prompts, generate in batches with a progress bar, write JSONL atomically."""
    import torch
    from tqdm import tqdm

    from chimed_lit.data.base import FieldError
    from chimed_lit.data.conversation import prompt_messages
    from chimed_lit.data.sources import read_file
    from chimed_lit.inference.generation import generate, load_for_inference, render_prompts
    from chimed_lit.io.atomic import write_text
    from chimed_lit.io.leftovers import remove_output_leftovers

    cfg = _compose("generate", args)
    out = Path(cfg.output or Path(cfg.input).with_suffix("").as_posix() + ".responses.jsonl")
    remove_output_leftovers(out)  # what killed writes of this output file left beside it
    torch.manual_seed(cfg.seed)
    records: list[dict[str, Any]] = []
    conversations = []
    for rec in read_file(cfg.input, fmt="jsonl"):
        if rec.error is not None:
            raise rec.error
        try:
            conversations.append(prompt_messages(rec.data))
        except FieldError as e:
            raise DataError(rec.source, str(e), where=rec.where, field=e.field) from None
        records.append(rec.data)
        if cfg.limit and len(records) >= cfg.limit:
            break
    model, tok = load_for_inference(
        cfg.model.pretrained, cfg.model.dtype, cfg.model.trust_remote_code
    )
    prompts = render_prompts(tok, conversations, cfg.template)
    sampling, lines, finished = _sampling(cfg), [], 0
    for start in tqdm(range(0, len(prompts), cfg.batch_size), desc="generating", unit="batch"):
        batch = prompts[start : start + cfg.batch_size]
        replies = generate(model, tok, batch, sampling)
        for rec, res in zip(records[start : start + cfg.batch_size], replies, strict=True):
            finished += res["finished"]
            lines.append(
                json.dumps(
                    {
                        **rec,
                        "response": res["text"],
                        "finished": res["finished"],
                        "response_tokens": len(res["ids"]),
                    },
                    ensure_ascii=False,
                )
            )
    write_text(out, "\n".join(lines) + "\n")
    print(
        f"wrote {len(lines)} responses to {out} ({finished} ended with EOS within "
        f"max_new_tokens={cfg.sampling.max_new_tokens})"
    )
    return 0


def chat_command(args: list[str]) -> int:
    """An interactive multi-turn chat; tokens stream to the terminal as they are generated."""
    import torch
    from transformers import TextStreamer

    from chimed_lit.inference.generation import generate, load_for_inference, render_prompts

    cfg = _compose("chat", args)
    torch.manual_seed(cfg.seed)
    model, tok = load_for_inference(
        cfg.model.pretrained, cfg.model.dtype, cfg.model.trust_remote_code
    )
    sampling = _sampling(cfg)
    base = [{"role": "system", "content": cfg.system}] if cfg.system else []
    history = list(base)
    print(f"chatting with {cfg.model.pretrained} (/reset clears the history, /exit quits)")
    while True:
        try:
            line = input("你: ").strip()
        except EOFError:
            print()
            return 0
        if line in ("/exit", "/quit"):
            return 0
        if line == "/reset":
            history = list(base)
            print("(history cleared)")
            continue
        if not line:
            continue
        history.append({"role": "user", "content": line})
        print("医生: ", end="", flush=True)
        streamer = TextStreamer(tok, skip_prompt=True, skip_special_tokens=True)
        reply = generate(
            model, tok, render_prompts(tok, [history], cfg.template), sampling, streamer=streamer
        )[0]
        sys.stdout.flush()
        history.append({"role": "assistant", "content": reply["text"]})
