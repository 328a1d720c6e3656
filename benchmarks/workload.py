"""The work both trainers do: model configs, one random init saved once, and the same data as
text (for chimed-lit, which reads files as a user's run does) and as token ids (for TRL).

The token ids given to TRL are produced by chimed-lit's own DataModules from the same files, so
both sides train on identical ids, loss masks and documents (long documents pre-split into
`seq_len` pieces for both, as chimed-lit does).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

SHARED = Path("/work/shared/data")

# LLaMA shapes (vocab 4096 from the demo tokenizer); names are total parameter counts.
SIZES: dict[str, dict[str, int]] = {
    "2M": {
        "hidden_size": 128,
        "intermediate_size": 352,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
    },  # the shipped `model=tiny`
    "7M": {
        "hidden_size": 256,
        "intermediate_size": 688,
        "num_hidden_layers": 6,
        "num_attention_heads": 4,
    },
    "30M": {
        "hidden_size": 512,
        "intermediate_size": 1376,
        "num_hidden_layers": 8,
        "num_attention_heads": 8,
    },
    "100M": {
        "hidden_size": 768,
        "intermediate_size": 2048,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
    },
    "1B": {
        "hidden_size": 2048,
        "intermediate_size": 5504,
        "num_hidden_layers": 20,
        "num_attention_heads": 16,
    },
}
COMMON = {
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "initializer_range": 0.02,
}


def arch(size: str) -> dict[str, Any]:
    return {**COMMON, **SIZES[size], "num_key_value_heads": SIZES[size]["num_attention_heads"]}


def _source(rel: str, demo: str) -> Path:
    """A shared real sample when present, else the shipped demo file."""
    path = SHARED / rel
    if path.is_file():
        return path
    from chimed_lit.demo import demo_path

    return Path(demo_path(demo))


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")


def prepare(
    root: Path,
    size: str,
    seq_len: int,
    seed: int = 0,
    parts: tuple[str, ...] = ("pretrain", "sft", "pref", "prompts", "mcq"),
) -> dict[str, Any]:
    """Write the model init, tokenizer and data under `root`; return what the workers need."""
    import torch

    from chimed_lit.models.factory import ModelFactory

    root.mkdir(parents=True, exist_ok=True)
    meta_file = root / "workload.json"
    if meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        if (
            meta["size"] == size
            and meta["seq_len"] == seq_len
            and all(p in meta for p in parts)
            and ("pref" not in parts or (root / "trl_dpo.json").is_file())
        ):
            return meta
    torch.manual_seed(seed)
    factory = ModelFactory(arch=arch(size))
    tok = factory.load_tokenizer()
    model = factory.load_causal_lm(tok)
    model.save_pretrained(root / "init")
    tok.save_pretrained(root / "init")
    reward = factory.load_reward_model(tok, pretrained=str(root / "init"))
    reward.save_pretrained(root / "reward_init")
    tok.save_pretrained(root / "reward_init")
    meta = {
        "size": size,
        "seq_len": seq_len,
        "arch": {**arch(size), "vocab_size": model.config.vocab_size},
        "pad_id": tok.pad_token_id,
        "init": str(root / "init"),
        "reward_init": str(root / "reward_init"),
    }
    meta.update(_data(root, tok, seq_len, seed, parts))
    meta_file.write_text(json.dumps(meta, indent=1))
    return meta


# Pairs whose response alone fills `seq_len` are dropped (15 of 60 at 256 tokens, and 3 of the
# 4 never-run validation pairs): both sides train on the pairs kept, as before the DataModule's
# 5% limit (41b10c6), which is raised here and for ours.
PREF_MAX_DROPPED = 0.9


def _data(root: Path, tok: Any, seq_len: int, seed: int, parts: tuple[str, ...]) -> dict[str, Any]:
    from chimed_lit.data.packing import split_long
    from chimed_lit.data.preference import PreferenceDataModule
    from chimed_lit.data.pretrain import PretrainDataModule
    from chimed_lit.data.prompts import PromptDataModule
    from chimed_lit.data.sft import SFTDataModule

    out: dict[str, Any] = {}
    rng = random.Random(seed)
    cache = str(root / "cache")

    # pre-training: one document per non-empty line
    lines = [
        ln.strip()
        for ln in _source("pretrain/medicalgpt_fever_textbook.txt", "pretrain.jsonl")
        .read_text("utf-8")
        .splitlines()
    ]
    texts = [ln for ln in lines if ln and not ln.startswith("{")] or [
        json.loads(ln)["text"] for ln in lines if ln
    ]
    _write_jsonl(root / "pretrain.jsonl", [{"text": t} for t in texts])
    _write_jsonl(root / "pretrain_val.jsonl", [{"text": t} for t in texts[:4]])
    dm = PretrainDataModule(tokenizer=tok, max_length=seq_len, train_files=["x"], cache_dir=cache)
    docs = [c for t in texts for c in split_long(dm.tokenize({"text": t})["input_ids"], seq_len)]
    (root / "trl_pretrain.json").write_text(json.dumps({"input_ids": docs}))
    out["pretrain"] = {
        "train": str(root / "pretrain.jsonl"),
        "val": str(root / "pretrain_val.jsonl"),
        "docs": len(docs),
        "tokens": sum(map(len, docs)),
    }

    if parts == ("pretrain",):
        return out

    # SFT: multi-turn conversations and instructions
    recs = [
        json.loads(ln)
        for ln in _source("sft/medicalgpt_medical_sft.jsonl", "sft.jsonl")
        .read_text("utf-8")
        .splitlines()
        if ln.strip()
    ]
    _write_jsonl(root / "sft.jsonl", recs)
    _write_jsonl(root / "sft_val.jsonl", recs[:4])
    sft = SFTDataModule(
        tokenizer=tok,
        train_files=[str(root / "sft.jsonl")],
        val_files=[str(root / "sft_val.jsonl")],
        max_length=seq_len,
        cache_dir=cache,
    )
    sft.setup("fit")
    ds = sft.train_dataset.with_format(None).to_dict()
    (root / "trl_sft.json").write_text(
        json.dumps({"input_ids": ds["input_ids"], "labels": ds["labels"]})
    )
    out["sft"] = {
        "train": str(root / "sft.jsonl"),
        "val": str(root / "sft_val.jsonl"),
        "rows": len(ds["input_ids"]),
        "tokens": sum(map(len, ds["input_ids"])),
    }

    # reward / DPO: preference pairs
    prefs = [
        json.loads(ln)
        for ln in _source("preference/medicalgpt_reward_medical.jsonl", "preference.jsonl")
        .read_text("utf-8")
        .splitlines()
        if ln.strip()
    ]
    rng.shuffle(prefs)
    _write_jsonl(root / "pref.jsonl", prefs)
    _write_jsonl(root / "pref_val.jsonl", prefs[:4])
    pdm = PreferenceDataModule(
        tokenizer=tok,
        train_files=[str(root / "pref.jsonl")],
        val_files=[str(root / "pref_val.jsonl")],
        max_length=seq_len,
        max_dropped_fraction=PREF_MAX_DROPPED,
        cache_dir=cache,
    )
    pdm.setup("fit")
    cols = pdm.train_dataset.with_format(None).to_dict()
    (root / "trl_pref.json").write_text(json.dumps(cols))
    (root / "trl_dpo.json").write_text(json.dumps(_dpo_columns(cols)))
    out["pref"] = {
        "max_dropped_fraction": PREF_MAX_DROPPED,
        "train": str(root / "pref.jsonl"),
        "val": str(root / "pref_val.jsonl"),
        "pairs": len(cols["chosen_ids"]),
        "columns": sorted(cols),
    }

    # PPO prompts: the SFT conversations up to their last assistant turn
    prm = PromptDataModule(
        tokenizer=tok,
        train_files=[str(root / "sft.jsonl")],
        val_files=[str(root / "sft_val.jsonl")],
        max_length=64,
        cache_dir=cache,
    )
    prm.setup("fit")
    prompts = prm.train_dataset.with_format(None).to_dict()["prompt_ids"]
    (root / "trl_prompts.json").write_text(json.dumps({"input_ids": prompts}))
    out["prompts"] = {
        "train": str(root / "sft.jsonl"),
        "val": str(root / "sft_val.jsonl"),
        "max_length": 64,
        "count": len(prompts),
    }
    if "mcq" in parts:
        out["mcq"] = _mcq(root, tok, cache)
    return out


MCQ_MAX_LENGTH = 128  # prompt tokens (longer prompts keep their end: the options and "答案：")


def _mcq(root: Path, tok: Any, cache: str) -> dict[str, Any]:
    """GRPO prompts with gold answers: medical exam MCQs (the shared CMExam sample, else the
    shipped demo MCQs) read by `data=mcq_demo`'s DataModule as `chimed-lit fit` reads them, in
    its dataset order; TRL gets the same token ids and the gold letters."""
    from chimed_lit.data.prompts import MCQDemoPromptDataModule
    from chimed_lit.demo import demo_path

    train = _source("mcq/cmexam_val.csv", "mcq_train.jsonl")
    val = Path(demo_path("mcq_val.jsonl"))  # never run (limit_val_batches=0), only read
    dm = MCQDemoPromptDataModule(
        tokenizer=tok,
        train_files=[str(train)],
        val_files=[str(val)],
        max_length=MCQ_MAX_LENGTH,
        on_bad_record="skip",
        cache_dir=cache,
    )
    dm.setup("fit")
    cols = dm.train_dataset.with_format(None).to_dict()
    golds = [json.loads(g) for g in cols["gold"]]
    (root / "trl_mcq.json").write_text(
        json.dumps(
            {
                "prompt": [tok.decode(ids) for ids in cols["prompt_ids"]],
                "prompt_ids": cols["prompt_ids"],
                "answers": ["".join(sorted(g["answers"])) for g in golds],
            },
            ensure_ascii=False,
        )
    )
    return {
        "train": str(train),
        "val": str(val),
        "max_length": MCQ_MAX_LENGTH,
        "on_bad_record": "skip",
        "count": len(cols["prompt_ids"]),
        "mean_prompt_tokens": sum(map(len, cols["prompt_ids"])) / len(cols["prompt_ids"]),
    }


def rollout_order(n: int, seed: int) -> list[int]:
    """The order in which chimed-lit's training loader visits `n` prompts in its first pass
    with `seed` (its `ResumableSampler`): given to TRL unshuffled, each step of both trainers
    samples for the same prompts."""
    from chimed_lit.data.sampler import ResumableSampler

    return list(ResumableSampler(n, shuffle=True, seed=seed))


def _dpo_columns(cols: dict[str, list]) -> dict[str, list]:
    """TRL's tokenized DPO format (prompt_ids, chosen_ids, rejected_ids) cut from chimed-lit's
    rendered pairs at the response start (both sides share the prompt tokens)."""
    out: dict[str, list] = {"prompt_ids": [], "chosen_ids": [], "rejected_ids": []}
    for c, r, cn, rn in zip(
        cols["chosen_ids"],
        cols["rejected_ids"],
        cols["chosen_response_len"],
        cols["rejected_response_len"],
        strict=True,
    ):
        prompt = c[: len(c) - cn]
        if r[: len(r) - rn] != prompt:
            raise ValueError("chosen and rejected rows do not share their prompt tokens")
        out["prompt_ids"].append(prompt)
        out["chosen_ids"].append(c[len(c) - cn :])
        out["rejected_ids"].append(r[len(r) - rn :])
    return out
