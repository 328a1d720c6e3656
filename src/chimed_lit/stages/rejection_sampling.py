"""RLHF by rejection sampling, the loop the ChiMed-GPT authors ran (`stage.algorithm=rejection_sampling`).

Each round (`stage.rejection.rounds`):
1. sample `samples_per_prompt` replies to every training prompt from the current policy;
2. score each (prompt, reply) with the frozen reward model, re-rendered exactly as the reward
   model was trained (`render_tokens(prompt + [assistant reply])`, cut after the reply's
   end-of-turn token; a reply without EOS is scored without one);
3. keep the best: the `top_k` distinct replies per prompt, or the global `top_fraction` of all
   samples. Replies without EOS (or empty) rank below every finished one and are never kept:
   SFT renders every reply with an EOS, so a cut-off reply would be taught as a complete answer;
4. fine-tune the policy on the kept replies for `sft_steps` steps (the sft stage's config and
   the shared stage runner, so the round is an ordinary, inspectable SFT run, validated on the SFT held-out
   file); `stage.rejection.mix_sft_data=true` adds the SFT train files (see `mix_sft_data`).

Outputs under `<output_dir>/rlhf/`: `round{r}/scored.jsonl` (every sample, its reward, whether it
finished and was kept), `round{r}/samples.jsonl` (the kept ones as OpenAI `messages` records
with their reward), `round{r}/sft/` (that round's SFT run, its `hf/` the new policy), `hf/` (the
final policy), `config.yaml` and `summary.json`. The held-out measure `rlhf/val_reward` is the
mean raw reward of greedy replies to the validation prompts, decoded with
`stage.module.val_sampling` as PPO's validation does, so the two algorithms report one metric;
the replies themselves are in `val_initial.jsonl` and `val_final.jsonl`.

With `resume=true` a round whose `round.json` and `sft/hf/` exist is reused, and a round cut off
during its SFT draws its samples again (same seed and policy: the same samples) and continues
that SFT from its newest valid checkpoint, so a resumed run ends as an uninterrupted one.
Sampling and scoring run in this one process on one device (CUDA when present); each round's SFT
uses the trainer settings of the rlhf config (accelerator, devices, precision).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from tqdm.auto import tqdm

from chimed_lit.chat.render import render_tokens
from chimed_lit.demo import demo_path
from chimed_lit.inference.generation import Sampling, generate
from chimed_lit.io.atomic import write_dir, write_json, write_text
from chimed_lit.io.errors import ConfigError
from chimed_lit.io.redaction import redacted_yaml
from chimed_lit.modules.reward import score_sequences
from chimed_lit.planning.setup import StageSetup, stage_setup
from chimed_lit.stages import RUNNING_CONFIG, StageContext, stage_dir
from chimed_lit.stages.loading import tokenizer_for
from chimed_lit.stages.rl import RLStage, check_rl_models, policy_and_reward

log = logging.getLogger("chimed_lit")

KEEP_RULES = ("top_k", "top_fraction")

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Scored:
    """One sampled reply to prompt `prompt_index`, with its reward-model score."""

    prompt_index: int
    prompt: Messages
    response: str
    finished: bool
    reward: float

    @property
    def eligible(self) -> bool:
        """May be kept: it ended with EOS and says something."""
        return self.finished and bool(self.response.strip())


# ----- 1. the keep rules (pure) ---------------------------------------------------------------
def rank(samples: Iterable[Scored]) -> list[Scored]:
    """Best first: finished non-empty replies by reward, then the rest by reward."""
    return sorted(samples, key=lambda s: (s.eligible, s.reward), reverse=True)


def _distinct(samples: Iterable[Scored]) -> list[Scored]:
    """Drop repeats of one reply to one prompt (sampling repeats short answers), which would
    otherwise take several of a prompt's slots and be over-weighted in the SFT round."""
    seen: set[tuple[int, str]] = set()
    out = []
    for s in samples:
        if (s.prompt_index, s.response) not in seen:
            seen.add((s.prompt_index, s.response))
            out.append(s)
    return out


def keep_top_k(samples: Sequence[Scored], k: int) -> list[Scored]:
    """The `k` best distinct eligible replies of each prompt, in prompt order."""
    if k < 1:
        raise ConfigError(f"stage.rejection.top_k={k}: keep at least 1 reply per prompt")
    by_prompt: dict[int, list[Scored]] = {}
    for s in samples:
        by_prompt.setdefault(s.prompt_index, []).append(s)
    kept = []
    for index in sorted(by_prompt):
        best = [s for s in _distinct(rank(by_prompt[index])) if s.eligible]
        kept += best[:k]
    return kept


def keep_top_fraction(samples: Sequence[Scored], fraction: float) -> list[Scored]:
    """The best `ceil(fraction * len(samples))` distinct replies over all prompts (a prompt
    may contribute several or none), less any ineligible ones among them."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"stage.rejection.top_fraction={fraction}: use a value in (0, 1]")
    n = math.ceil(fraction * len(samples))
    return [s for s in _distinct(rank(samples))[:n] if s.eligible]


def select(
    samples: Sequence[Scored], rule: str, top_k: int = 1, top_fraction: float = 0.25
) -> list[Scored]:
    """Apply `stage.rejection.keep`."""
    if rule == "top_k":
        return keep_top_k(samples, top_k)
    if rule == "top_fraction":
        return keep_top_fraction(samples, top_fraction)
    raise ConfigError(f"stage.rejection.keep={rule!r}: use one of {', '.join(KEEP_RULES)}")


def sft_record(s: Scored) -> dict[str, Any]:
    """A kept sample as an SFT record (OpenAI `messages`), its reward alongside."""
    return {
        "messages": [*s.prompt, {"role": "assistant", "content": s.response}],
        "reward": s.reward,
    }


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


# ----- 2. prompts, sampling and scoring ---------------------------------------------------------
@dataclass(frozen=True)
class Prompts:
    """Conversations to answer and their policy-input ids (rendered and truncated as the
    PromptDataModule does)."""

    messages: list[Messages]
    ids: list[list[int]]


def load_prompts(dm: Any) -> tuple[Prompts, Prompts]:
    """Train and held-out prompts of a `PromptDataModule`, split as its `setup` splits them.

    The module's datasets keep only ids and the last user text, and the reward model and the
    SFT round need the whole conversation, so records are read through the module's own
    `split_records` / `tokenize`."""
    train, val = dm.split_records()
    return _prompts(dm, train), _prompts(dm, val)


def _prompts(dm: Any, records: list[dict[str, Any]]) -> Prompts:
    return Prompts(
        [r["messages"] for r in records], [list(dm.tokenize(r)["prompt_ids"]) for r in records]
    )


def _batches(n: int, size: int) -> list[range]:
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


def sample_replies(
    model: torch.nn.Module,
    tok: Any,
    prompts: list[list[int]],
    n: int,
    sampling: Any,
    batch_size: int,
    desc: str,
) -> list[list[dict[str, Any]]]:
    """`n` replies per prompt (`generate`'s dicts), `batch_size` prompts (x n rows) at a time."""
    out: list[list[dict[str, Any]]] = []
    for rows in tqdm(_batches(len(prompts), batch_size), desc=desc, leave=False):
        replies = generate(model, tok, [prompts[i] for i in rows for _ in range(n)], sampling)
        out += [replies[j * n : (j + 1) * n] for j in range(len(rows))]
    return out


def reward_ids(
    tok: Any, prompt: Messages, response: str, finished: bool, template: str
) -> list[int]:
    """What the reward model reads, as `PreferenceDataModule` renders it: the conversation
    plus the reply, up to the reply's end-of-turn token; without it when the reply had no EOS,
    so an unfinished reply is not scored as if it had stopped."""
    r = render_tokens(tok, [*prompt, {"role": "assistant", "content": response}], template)
    ids = r.input_ids[: r.turn_ends[-1]]
    if not finished and ids and ids[-1] == tok.eos_token_id:
        ids = ids[:-1]
    return ids


@torch.no_grad()
def score_rows(
    reward_model: torch.nn.Module, rows: list[list[int]], pad_id: int, batch_size: int
) -> list[float]:
    """Raw rewards of token rows (right-padded, mask from lengths) via `score_sequences`."""
    device = next(reward_model.parameters()).device
    scores: list[float] = []
    for idx in _batches(len(rows), batch_size):
        batch = [rows[i] for i in idx]
        width = max(len(r) for r in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(batch):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        scores += score_sequences(reward_model, ids.to(device), mask.to(device)).tolist()
    return scores


def score_replies(
    reward_model: torch.nn.Module,
    tok: Any,
    prompts: Prompts,
    replies: list[list[dict[str, Any]]],
    template: str,
    batch_size: int,
) -> list[Scored]:
    """Every reply to every prompt, scored."""
    flat = [(i, r) for i, rs in enumerate(replies) for r in rs]
    rows = [
        reward_ids(tok, prompts.messages[i], r["text"], r["finished"], template) for i, r in flat
    ]
    scores = score_rows(reward_model, rows, tok.pad_token_id, batch_size)
    return [
        Scored(i, prompts.messages[i], r["text"], bool(r["finished"]), float(s))
        for (i, r), s in zip(flat, scores, strict=True)
    ]


def val_reward(
    policy: torch.nn.Module,
    reward_model: torch.nn.Module,
    tok: Any,
    val: Prompts,
    sampling: Any,
    template: str,
    batch_size: int,
) -> tuple[dict[str, float], list[Scored]]:
    """The held-out measure: mean raw reward and EOS rate of greedy replies to `val`, and the
    scored replies themselves (a mean alone hides whether it rose by better answers or by
    fewer empty ones)."""
    replies = sample_replies(policy, tok, val.ids, 1, sampling, batch_size, "rlhf val replies")
    scored = score_replies(reward_model, tok, val, replies, template, batch_size)
    return {
        "rlhf/val_reward": mean([s.reward for s in scored]),
        "rlhf/val_eos_rate": mean([float(s.finished) for s in scored]),
    }, scored


# ----- 3. one round's SFT config -----------------------------------------------------------------
def mix_sft_data(cfg: DictConfig) -> bool:
    """`stage.rejection.mix_sft_data` (default false): also train each round on the sft stage's
    own train files. Off by default because the SFT data holds the very answers the reward model
    learned to reject (the demo's terse and evasive replies): mixed in, they pull the policy
    back to them and the held-out reward falls instead of rising."""
    return bool(cfg.stage.rejection.get("mix_sft_data", False))


def sft_round_config(
    cfg: DictConfig,
    compose: Callable[[str, str], DictConfig],
    round_dir: Path,
    samples_file: Path,
    r: int,
) -> DictConfig:
    """The sft stage config for round `r`: the kept samples (plus the sft stage's own train
    files with `mix_sft_data`) and its held-out files, `stage.rejection.sft_steps` steps,
    written to `round_dir/sft/`. `compose` (`StageContext.compose`) gives the sft stage's
    config as this run composes it, with the rlhf config's run-wide pieces and devices."""
    sft = compose("sft", str(round_dir))
    rej = cfg.stage.rejection
    demo_train, demo_val = get_class(sft.data._target_).demo_files
    with open_dict(sft):
        given = sft.data.get("train_files")
        if not given:
            sft.data.val_files = list(sft.data.get("val_files") or [demo_path(demo_val)])
        original = list(given or [demo_path(demo_train)]) if mix_sft_data(cfg) else []
        if not original:
            sft.data.weights = None
        sft.data.train_files = [*original, str(samples_file)]
        if sft.data.get("weights"):  # the samples weigh as much as an average original file
            w = list(sft.data.weights)
            sft.data.weights = [*w, sum(w) / len(w)]
        sft.trainer.max_steps = int(rej.sft_steps)
        interval = sft.trainer.get("val_check_interval")
        if isinstance(interval, int) and interval > rej.sft_steps:
            sft.trainer.val_check_interval = int(rej.sft_steps)
        sft.seed = int(cfg.seed) + r  # a fresh data order each round
        sft.resume = bool(cfg.resume)  # an interrupted round's SFT continues from its checkpoint
    return sft


# ----- 4. the loop ------------------------------------------------------------------------------
def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _sampling(spec: Any, **defaults: Any) -> Any:
    given = OmegaConf.to_container(spec, resolve=True) if spec is not None else {}
    return Sampling(**{**defaults, **given})


def _round_done(round_dir: Path) -> dict[str, Any] | None:
    path = round_dir / "round.json"
    if path.is_file() and (round_dir / "sft" / "hf").is_dir():
        return json.loads(path.read_text())
    return None


def run_round(
    cfg: DictConfig,
    r: int,
    policy_dir: str,
    reward_model: torch.nn.Module,
    factory: Any,
    prompts: Prompts,
    ctx: StageContext,
) -> dict[str, Any]:
    """Sample, score, keep, write, fine-tune; returns the round's record (`hf_dir`: new policy)."""
    rej, dm_cfg = cfg.stage.rejection, cfg.data
    round_dir = stage_dir(cfg) / f"round{r}"
    tok = tokenizer_for(factory, policy_dir)
    policy = factory.load_causal_lm(tok, pretrained=policy_dir).eval().to(_device())
    L.seed_everything(int(cfg.seed) + r, verbose=False)
    sampling = _sampling(rej.sampling, do_sample=True)
    log.info(
        "rlhf round %d/%d: %d prompts x %d samples",
        r + 1,
        rej.rounds,
        len(prompts.ids),
        rej.samples_per_prompt,
    )
    replies = sample_replies(
        policy,
        tok,
        prompts.ids,
        int(rej.samples_per_prompt),
        sampling,
        int(dm_cfg.batch_size),
        f"rlhf round {r} sampling",
    )
    del policy
    scored = score_replies(
        reward_model, tok, prompts, replies, dm_cfg.template, int(dm_cfg.eval_batch_size)
    )
    kept = select(scored, rej.keep, int(rej.top_k), float(rej.top_fraction))
    if not kept:
        raise ConfigError(
            f"rlhf round {r}: no sampled reply ended with EOS, nothing to keep; "
            "raise stage.rejection.sampling.max_new_tokens"
        )
    samples_file = round_dir / "samples.jsonl"
    kept_ids = {id(s) for s in kept}
    write_jsonl(
        round_dir / "scored.jsonl", ({**asdict(s), "kept": id(s) in kept_ids} for s in rank(scored))
    )
    write_jsonl(samples_file, (sft_record(s) for s in kept))
    record = {
        "round": r,
        "samples": len(scored),
        "kept": len(kept),
        "mean_reward": mean([s.reward for s in scored]),
        "kept_mean_reward": mean([s.reward for s in kept]),
        "eos_rate": mean([float(s.finished) for s in scored]),
        "fingerprint": ctx.fingerprint,  # what a resume compares before reusing the round
    }
    log.info(
        "rlhf round %d: mean reward %.4f over %d samples, %.4f over the %d kept (eos %.2f)",
        r,
        record["mean_reward"],
        len(scored),
        record["kept_mean_reward"],
        len(kept),
        record["eos_rate"],
    )

    reward_model.to("cpu")  # the SFT round has the device to itself
    sft_cfg = sft_round_config(cfg, ctx.compose, round_dir, samples_file, r)
    summary = ctx.fit(
        sft_cfg, upstream={"pretrain": policy_dir}, run_name=f"{ctx.run_name or 'rlhf'}-round{r}"
    )
    reward_model.to(_device())
    record.update(
        sft_train_loss=summary.get("train_loss"),
        sft_final=summary.get("final"),
        hf_dir=summary["hf_dir"],
    )
    write_json(round_dir / "round.json", record)
    return record


def knob_problems(cfg: DictConfig) -> list[str]:
    """Bad `stage.rejection` settings, found before anything loads."""
    rej = cfg.stage.rejection
    out = []
    if int(rej.rounds) < 0 or int(rej.samples_per_prompt) < 1:
        out.append(
            f"stage.rejection: rounds={rej.rounds} (>= 0) and samples_per_prompt="
            f"{rej.samples_per_prompt} (>= 1)"
        )
    try:
        select([], rej.keep, int(rej.top_k), float(rej.top_fraction))
    except ConfigError as e:
        out += e.problems
    return out


def run_rejection_sampling(cfg: DictConfig, ctx: StageContext) -> dict[str, Any]:
    """Train the rlhf stage by rejection sampling (the `run` of `RejectionSampling`)."""
    started = time.time()
    rej = cfg.stage.rejection
    policy_dir, reward_dir = policy_and_reward(cfg, ctx.upstream, "rejection sampling")
    check_rl_models(cfg, ctx.upstream)
    sdir = stage_dir(cfg)
    sdir.mkdir(parents=True, exist_ok=True)
    write_text(sdir / RUNNING_CONFIG, redacted_yaml(cfg))  # config.yaml once it exported

    L.seed_everything(cfg.seed, verbose=False)
    factory = instantiate(cfg.model)
    tok = tokenizer_for(factory, policy_dir)
    reward_model = factory.load_reward_model(tok, pretrained=reward_dir).eval().to(_device())
    reward_model.requires_grad_(False)
    dm = instantiate(cfg.data, tokenizer=tok)
    train, val = load_prompts(dm)
    if not val.ids:
        raise ConfigError(
            "rejection sampling measures the policy on held-out prompts: give "
            "data.val_files or a data.val_fraction > 0"
        )
    template = cfg.data.template
    val_sampling = _sampling(
        cfg.stage.module.get("val_sampling"),
        do_sample=False,
        max_new_tokens=int(rej.sampling.max_new_tokens),
    )

    def measure(source: str, name: str) -> dict[str, float]:
        """Greedy held-out replies of the policy at `source`, written to `val_{name}.jsonl`."""
        policy = factory.load_causal_lm(tok, pretrained=source).eval().to(_device())
        metrics, scored = val_reward(
            policy, reward_model, tok, val, val_sampling, template, int(cfg.data.eval_batch_size)
        )
        write_jsonl(sdir / f"val_{name}.jsonl", (asdict(s) for s in scored))
        return metrics

    initial = measure(policy_dir, "initial")
    log.info("rlhf initial: %s", initial)
    rounds = []
    for r in range(int(rej.rounds)):
        done = _round_done(sdir / f"round{r}") if cfg.resume else None
        if done is not None:
            _check_round_made_here(cfg, done, r, ctx.fingerprint)
            log.info("rlhf round %d already done (%s): reusing it", r, done["hf_dir"])
        record = done or run_round(cfg, r, policy_dir, reward_model, factory, train, ctx)
        rounds.append(record)
        policy_dir = record["hf_dir"]
    final = measure(policy_dir, "final")
    log.info("rlhf final: %s", final)

    write_dir(sdir / "hf", lambda tmp: shutil.copytree(policy_dir, tmp, dirs_exist_ok=True))
    summary = {
        "stage": "rlhf",
        "algorithm": "rejection_sampling",
        "hf_dir": str(sdir / "hf"),
        "global_step": int(rej.sft_steps) * len(rounds),
        "initial": initial,
        "final": final,
        "rounds": rounds,
        "data": {"train_prompts": len(train.ids), "val_prompts": len(val.ids)},
        "elapsed_s": round(time.time() - started, 1),
        "fingerprint": ctx.fingerprint,
    }
    write_json(sdir / "summary.json", summary)
    os.replace(sdir / RUNNING_CONFIG, sdir / "config.yaml")
    return summary


def _check_round_made_here(cfg: DictConfig, done: dict[str, Any], r: int, now: str | None) -> None:
    """A finished round is reused on resume only when the rlhf stage's config and inputs are
    those it was made with (its `fingerprint`), unless `resume_allow_config_change=true`."""
    made = done.get("fingerprint")
    if made is None or now is None or made == now:
        return
    if cfg.get("resume_allow_config_change"):
        log.warning("rlhf round %d was made under another config: reused as asked", r)
        return
    raise ConfigError(
        f"resume=true: rlhf round {r} was made under another config or other inputs of the rlhf "
        f"stage (fingerprint {made}, now {now}); run without resume=true to start over, or set "
        "resume_allow_config_change=true to reuse it"
    )


class RejectionSampling(RLStage):
    """`stage.algorithm=rejection_sampling`: its own loop of sampling, scoring and SFT rounds
    (each round through the shared runner, `StageContext.fit`); exports the last policy."""

    plan_kind = "rejection_sampling"

    def problems(self, cfg: DictConfig) -> list[str]:
        return super().problems(cfg) + knob_problems(cfg)

    def inner_configs(
        self, cfg: DictConfig, compose: Callable[[str, str], DictConfig]
    ) -> list[tuple[str, DictConfig]]:
        """The SFT round as round 0 will build it (every round differs only in its seed)."""
        round_dir = stage_dir(cfg) / "round0"
        return [
            ("sft round", sft_round_config(cfg, compose, round_dir, round_dir / "kept.jsonl", 0))
        ]

    def run(self, cfg: DictConfig, ctx: StageContext) -> dict[str, Any]:
        return run_rejection_sampling(cfg, ctx)

    def plan_setup(self, cfg: DictConfig) -> StageSetup:
        rej = cfg.stage.get("rejection") or {}
        new = int(rej.get("sampling", {}).get("max_new_tokens", 0))
        return stage_setup(
            cfg,
            self.plan_kind,
            rollout_batch=int(cfg.data.batch_size) * int(rej.get("samples_per_prompt", 1)),
            rollout_tokens=int(cfg.data.max_length) + new,
        )


ALGORITHM = RejectionSampling
