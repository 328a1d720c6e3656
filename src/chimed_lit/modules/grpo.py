"""`GRPOModule`: critic-free RL with group-relative advantages and verifiable rewards.

One module runs the whole GRPO family; the `stage.algorithm` modules (`grpo`, `dr_grpo`,
`dapo`, `gspo`, `rloo`, `reinforce_pp`) are presets of its knobs (stages/grpo.py). Models:
`actor` (trained), `ref` (frozen SFT policy, only when `kl_coef` > 0; with LoRA the actor with
its adapters off) and `reward_model` (frozen, only when the `reward_model` reward is used). No
critic: the baseline is the group's own rewards. The math lives in `chimed_lit.losses`.

Knobs:
- `reward`, `reward_options`: the rewards (`chimed_lit.rewards`: `mcq`, `ner`, `format`,
  `length`, `repetition`, `reward_model`, `judge`, or weighted mixes such as `mcq+format` or
  {mcq: 1.0, format: 0.2}) and each one's options; `template`: the prompt template.
- `group_size` (G): responses sampled per prompt; `sampling`, `val_sampling`; `val_samples`:
  replies per held-out prompt (with a sampling `val_sampling`: mean@k, the expected score of
  the policy as it samples, not only of its greedy reply).
- `advantage`: grpo (group mean and std, Shao et al. 2024), dr_grpo (group mean only, Liu et
  al. 2025), rloo (leave-one-out mean, Ahmadian et al. 2024), reinforce_pp (group mean, batch
  std, Hu 2025).
- `ratio_level`: token (PPO/GRPO) or sequence (GSPO, Zheng et al. 2025).
- `aggregation`: token_mean | seq_mean_token_mean | seq_mean_token_sum; `max_tokens` set makes
  the last a constant divisor, N x max_tokens (Dr. GRPO's preset: `sampling.max_new_tokens`).
- `clip_low`, `clip_high`: the ratio's clip range (DAPO's clip-higher when they differ).
- `kl_coef` (0: off, no reference), `kl_estimator` (k1 | k3 | low_var): KL to the reference
  as a loss term.
- `entropy_coef`: entropy bonus (0: entropy is only logged).
- `dynamic_sampling`: drop groups whose rewards all agree and update once a full batch of
  informative groups is buffered (DAPO); `max_wait`: after this many steps without a full
  batch, update on what is buffered.
- `update_without_spread`: update even when no group has a reward spread (zero advantages;
  Adam's momentum from earlier steps and a KL term would still move the weights); off by
  default; TRL updates on every rollout.
- `overlong`: {mode: none | filter | soft, buffer}: truncated responses masked out of the loss
  (filter) or the soft length penalty of DAPO eq. 13 added to their reward (soft).
- `update_epochs`, `minibatch_size` (responses; null: the whole batch): passes over a rollout.
- `degenerate_warn_steps`: warn when every group has had zero reward spread this many steps.
- `max_grad_norm`, `optimizer`, `scheduler`, `padding_free`, `disable_dropout`,
  `table_every_n_steps` as for PPO.
One trainer step is one rollout batch (`data.batch_size` prompts x G), as for PPO, so
`trainer.max_steps` counts rollouts; with dynamic sampling a step whose informative groups do
not yet fill a batch only buffers them (`rlhf/updated` is 0 then). Metrics are
`rlhf/...`: `reward`, `reward/<component>`, `zero_std_fraction`, `clip_fraction_low/high`,
`entropy`, `kl`, `response_length`, `response_length_max`, `truncation_rate`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torchmetrics import MeanMetric

from chimed_lit.inference.generation import Sampling, generate
from chimed_lit.losses import entropy_from_logits, kl_penalty
from chimed_lit.losses.advantages import (
    group_advantages,
    reinforce_pp_advantages,
    rloo_advantages,
)
from chimed_lit.losses.overlong import overlong_penalty
from chimed_lit.losses.policy import aggregate, policy_loss
from chimed_lit.models import dropout
from chimed_lit.modules.optim import WarmupCosine, optimizer_and_schedule
from chimed_lit.modules.rollout_groups import Group, GroupBuffer, flatten, make_groups
from chimed_lit.modules.rollout_rows import (
    RolloutRows,
    behaviour_logps,
    layout,
    response_logits,
    response_logps,
)
from chimed_lit.modules.sharding import ShardedModelHook, gathered
from chimed_lit.plugins import lightning_internals
from chimed_lit.rewards.compose import build_rewards

log = logging.getLogger("chimed_lit")

FROZEN = ("ref.", "reward_model.")
ADVANTAGES = ("grpo", "dr_grpo", "rloo", "reinforce_pp")
OVERLONG_MODES = ("none", "filter", "soft")


class GRPOModule(ShardedModelHook, L.LightningModule):
    def __init__(
        self,
        actor: torch.nn.Module,
        tokenizer: Any,
        optimizer: Callable[..., torch.optim.Optimizer],
        ref: torch.nn.Module | None = None,
        reward_model: torch.nn.Module | None = None,
        scheduler: WarmupCosine | None = None,
        reward: Any = "reward_model",
        reward_options: dict | None = None,
        template: str = "chimed",
        group_size: int = 4,
        sampling: dict | None = None,
        val_sampling: dict | None = None,
        val_samples: int = 1,
        advantage: str = "grpo",
        ratio_level: str = "token",
        aggregation: str = "seq_mean_token_mean",
        max_tokens: int | None = None,
        clip_low: float = 0.2,
        clip_high: float = 0.2,
        kl_coef: float = 0.0,
        kl_estimator: str = "k3",
        entropy_coef: float = 0.0,
        dynamic_sampling: bool = False,
        update_without_spread: bool = False,
        max_wait: int = 4,
        overlong: dict | None = None,
        update_epochs: int = 1,
        minibatch_size: int | None = None,
        degenerate_warn_steps: int = 10,
        max_grad_norm: float | None = 1.0,
        table_every_n_steps: int = 0,
        padding_free: bool = True,
        disable_dropout: bool = True,
        stage: str = "rlhf",
    ):
        super().__init__()
        self.automatic_optimization = False
        self.strict_loading = False  # frozen models are rebuilt from their dirs
        self.actor, self.ref, self.reward_model = actor, ref, reward_model
        for frozen in (ref, reward_model):
            if frozen is not None:
                frozen.eval().requires_grad_(False)
        if disable_dropout:
            dropout.disable_dropout(actor)
        self.tokenizer, self.stage = tokenizer, stage
        self.optimizer_fn = optimizer
        self.scheduler = scheduler or WarmupCosine(warmup_ratio=0.0, min_lr_ratio=1.0)
        self.rewards = build_rewards(
            reward,
            reward_options or {},
            reward_model=reward_model,
            tokenizer=tokenizer,
            template=template,
        )
        self.group_size = group_size
        self.sampling = Sampling(
            **{"do_sample": True, "temperature": 1.0, "top_p": 1.0, **(sampling or {})}
        )
        self.val_sampling = Sampling(**{"do_sample": False, **(val_sampling or sampling or {})})
        self.val_samples = val_samples
        if advantage not in ADVANTAGES:
            raise ValueError(f"advantage={advantage!r}: use one of {', '.join(ADVANTAGES)}")
        self.advantage, self.ratio_level, self.aggregation = advantage, ratio_level, aggregation
        self.max_tokens = max_tokens
        self.clip_low, self.clip_high = clip_low, clip_high
        self.kl_coef, self.kl_estimator, self.entropy_coef = kl_coef, kl_estimator, entropy_coef
        self.dynamic_sampling, self.max_wait = dynamic_sampling, max_wait
        self.update_without_spread = update_without_spread
        self.overlong = {"mode": "none", "buffer": 0, **(overlong or {})}
        if self.overlong["mode"] not in OVERLONG_MODES:
            raise ValueError(
                f"overlong.mode={self.overlong['mode']!r}: use one of {OVERLONG_MODES}"
            )
        self.update_epochs, self.minibatch_size = update_epochs, minibatch_size
        self.degenerate_warn_steps, self.degenerate_streak = degenerate_warn_steps, 0
        self.max_grad_norm, self.table_every_n_steps = max_grad_norm, table_every_n_steps
        self.padding_free = padding_free
        self.buffer = GroupBuffer()
        self._update_keys: set[str] = set()  # statistics an update logs (NaN on other steps)
        self.val_reward = MeanMetric()
        self.val_components = torch.nn.ModuleDict({n: MeanMetric() for n in self.rewards.names})

    @property
    def model(self) -> torch.nn.Module:
        """What a stage exports as `hf/`: the policy."""
        return self.actor

    # ----- one update per batch of informative groups ---------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        n_prompts = len(batch["prompt_ids"])

        # 1. generate: G responses per prompt from the current policy, with their log-probs
        t0 = time.perf_counter()
        fresh = self._rollout(batch)
        t_generate = time.perf_counter() - t0

        # 2. score: every reward component of every response (and the overlong shaping)
        self._score(fresh)
        self._log_rollout(fresh, t_generate)
        self._watch_degenerate(fresh)
        self._maybe_table(fresh)

        # dynamic sampling: informative groups wait in the buffer until a batch is full (a
        # step that only fills the buffer still counts: `max_steps` counts rollout batches)
        groups = self._select(fresh, n_prompts)
        if groups is None:  # the schedule counts updates: its step waits for the next one
            lightning_internals.count_optimizer_step(self.trainer)
            # Lightning repeats a step metric's last value in a batch that does not log it:
            # an update's statistics are NaN (not measured) on a step without one
            nan = float("nan")
            self.log_dict(
                {f"{self.stage}/updated": 0.0, **dict.fromkeys(self._update_keys, nan)},
                batch_size=n_prompts,
            )
            return

        # 3. advantages: each response's reward against its group's (per the estimator)
        t0 = time.perf_counter()
        flat = flatten(groups)
        advantages, adv_stats = self._advantages(flat["rewards"].to(self.device))
        rows = layout(
            flat["prompts"],
            flat["replies"],
            self.tokenizer.eos_token_id,
            self.tokenizer.pad_token_id,
            self.device,
        )
        loss_mask = self._loss_mask(rows, flat["replies"])
        old_logp = behaviour_logps(flat["replies"], rows)
        with torch.no_grad():
            ref_logp = self._ref_logps(rows) if self.kl_coef else None

        # 4. optimize: `update_epochs` passes of the clipped objective over minibatches
        stats = self._optimize(rows, old_logp, ref_logp, advantages, loss_mask)
        self.lr_schedulers().step()
        lightning_internals.count_optimizer_step(self.trainer)
        update = {
            **{f"{self.stage}/{k}": v for k, v in stats.items()},
            # the trained groups' spread (after dynamic sampling), beside the fresh ones'
            **{f"{self.stage}/trained_{k}": v for k, v in adv_stats.items()},
            f"{self.stage}/groups_trained": float(len(groups)),
            f"{self.stage}/time_train": time.perf_counter() - t0,
        }
        self._update_keys.update(update)
        self.log_dict(
            {
                **update,
                f"{self.stage}/updated": 1.0,
                f"{self.stage}/lr": self.optimizers().param_groups[0]["lr"],
            },
            batch_size=len(groups),
        )

    # ----- 1. generate ----------------------------------------------------------------------
    def _rollout(self, batch: dict[str, Any]) -> list[Group]:
        prompts = [p for p in batch["prompt_ids"] for _ in range(self.group_size)]
        self.actor.eval()
        with gathered(self.actor):  # FSDP2: gather the actor once per rollout
            replies = generate(self.actor, self.tokenizer, prompts, self.sampling, with_logps=True)
        self.actor.train()
        return make_groups(batch, replies, self.group_size)

    # ----- 2. score ---------------------------------------------------------------------------
    def _score(self, groups: list[Group]) -> None:
        records = [g.record for g in groups for _ in g.replies]
        texts = [r["text"] for g in groups for r in g.replies]
        total, parts = self.rewards(records, texts)
        if self.overlong["mode"] == "soft":
            lengths = torch.tensor([len(r["ids"]) for g in groups for r in g.replies])
            shaping = overlong_penalty(
                lengths, self.sampling.max_new_tokens, int(self.overlong["buffer"])
            )
            total, parts = total + shaping, {**parts, "overlong": shaping}
        g_size = self.group_size
        for i, g in enumerate(groups):
            rows = slice(i * g_size, (i + 1) * g_size)
            g.rewards = total[rows].tolist()
            g.components = {k: v[rows].tolist() for k, v in parts.items()}

    def _select(self, fresh: list[Group], n_prompts: int) -> list[Group] | None:
        """The groups to learn from now (None: no update this step). Without dynamic sampling
        this step's groups, unless no group on any rank has a reward spread (a zero-advantage
        step would still move the weights through Adam's momentum). With it, a full batch of
        informative groups from the buffer; after `max_wait` steps without one, the largest
        number every rank holds. Ranks decide together: one updating alone would hang the
        others in the gradient all-reduce."""
        if not self.dynamic_sampling:
            if self.update_without_spread:  # as TRL does: a zero-advantage update too
                return fresh
            informative = sum(not g.degenerate for g in fresh)
            return fresh if self._over_ranks(informative, "max") > 0 else None
        self.buffer.add([g for g in fresh if not g.degenerate])
        self.log(f"{self.stage}/buffered_groups", float(len(self.buffer)), batch_size=n_prompts)
        held = self._over_ranks(len(self.buffer), "min")
        if held >= n_prompts:
            return self.buffer.take(n_prompts)
        self.buffer.waited += 1
        if self.buffer.waited < self.max_wait:
            return None
        log.warning(
            "%s: dynamic sampling found %d informative group(s) in %d steps, fewer than a "
            "batch of %d: updating on them (raise the group size or the temperature, or "
            "check the reward)",
            self.stage,
            held,
            self.buffer.waited,
            n_prompts,
        )
        return self.buffer.take(held) if held else None

    def _over_ranks(self, value: int, op: str) -> int:
        """`value` reduced over every process (DDP, FSDP2) by `op` (min | max)."""
        strategy = self.trainer.strategy
        if strategy.world_size <= 1:
            return value
        t = torch.tensor(float(value), device=self.device)
        gathered = strategy.all_gather(t)
        return int(gathered.min() if op == "min" else gathered.max())

    # ----- 3. advantages ------------------------------------------------------------------
    def _advantages(self, rewards: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        if self.advantage in ("grpo", "dr_grpo"):
            scale = "std" if self.advantage == "grpo" else "none"
            return group_advantages(rewards, self.group_size, scale=scale)
        if self.advantage == "rloo":
            return rloo_advantages(rewards, self.group_size)
        return reinforce_pp_advantages(rewards, self.group_size)

    def _loss_mask(self, rows: RolloutRows, replies: list[dict[str, Any]]) -> torch.Tensor:
        """The response mask, with truncated responses dropped under overlong filtering."""
        mask = rows.response_mask
        if self.overlong["mode"] == "filter":
            finished = torch.tensor([r["finished"] for r in replies], device=mask.device)
            mask = mask * finished[:, None].float()
        return mask

    def _view(self, rows: RolloutRows) -> RolloutRows:
        return rows.pack() if self.padding_free else rows

    def _logps(self, model: torch.nn.Module, rows: RolloutRows, entropy_mask=None):
        """[N, T] response log-probs under the sampling distribution (logits / temperature),
        and the mean entropy over `entropy_mask` when one is given."""
        logits = response_logits(model, self._view(rows))
        if self.sampling.do_sample and self.sampling.temperature != 1.0:
            logits = logits / self.sampling.temperature
        logp = response_logps(logits, rows)
        if entropy_mask is None:
            return logp, None
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.entropy_coef != 0):
            return logp, entropy_from_logits(logits[:, :-1], entropy_mask)

    def _ref_logps(self, rows: RolloutRows) -> torch.Tensor:
        if self.ref is not None:
            return self._logps(self.ref, rows)[0]
        with self.actor.disable_adapter():  # LoRA: the reference is the base
            return self._logps(self.actor, rows)[0]

    # ----- 4. optimize ----------------------------------------------------------------------
    def _optimize(self, rows, old_logp, ref_logp, advantages, mask) -> dict[str, torch.Tensor]:
        opt = self.optimizers().optimizer
        n = rows.ids.size(0)
        size = self.minibatch_size or n
        slices = [slice(s, s + size) for s in range(0, n, size)]
        sums: dict[str, list[torch.Tensor]] = {}
        for _ in range(self.update_epochs):
            for part in slices:
                mini, m = rows.rows(part), mask[part]
                logp, entropy = self._logps(self.actor, mini, entropy_mask=m)
                loss, stats = policy_loss(
                    logp,
                    old_logp[part],
                    advantages[part],
                    m,
                    clip_low=self.clip_low,
                    clip_high=self.clip_high,
                    ratio_level=self.ratio_level,
                    aggregation=self.aggregation,
                    max_tokens=self.max_tokens,
                )
                if ref_logp is not None:
                    kl = kl_penalty(logp, ref_logp[part], self.kl_estimator)
                    kl_term = aggregate(kl, m, self.aggregation, self.max_tokens)
                    loss = loss + self.kl_coef * kl_term
                    stats["kl"] = kl_term.detach()
                loss = loss - self.entropy_coef * entropy
                opt.zero_grad(set_to_none=True)
                self.manual_backward(loss)
                lightning_internals.run_before_optimizer_step_hooks(self.trainer, self, opt)
                if self.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(self.actor.parameters(), self.max_grad_norm)
                opt.step()
                stats = {**stats, "entropy": entropy.detach(), "loss": loss.detach()}
                for k, v in stats.items():
                    sums.setdefault(k, []).append(torch.as_tensor(v).detach().float())
        out = {k: torch.stack(v).mean() for k, v in sums.items()}
        out["updates"] = torch.tensor(float(self.update_epochs * len(slices)))
        return out

    # ----- diagnostics ------------------------------------------------------------------------
    def _log_rollout(self, groups: list[Group], t_generate: float) -> None:
        """This step's fresh samples: reward and components, lengths, truncation."""
        n = len(groups) * self.group_size
        rewards = torch.tensor([x for g in groups for x in g.rewards])
        lengths = torch.tensor([float(len(r["ids"])) for g in groups for r in g.replies])
        finished = torch.tensor([float(r["finished"]) for g in groups for r in g.replies])
        out = {
            f"{self.stage}/reward_std": rewards.std() if n > 1 else torch.tensor(0.0),
            f"{self.stage}/zero_std_fraction": sum(g.degenerate for g in groups) / len(groups),
            f"{self.stage}/response_length": lengths.mean(),
            f"{self.stage}/response_length_max": lengths.max(),
            f"{self.stage}/truncation_rate": 1.0 - finished.mean(),
            f"{self.stage}/time_generate": t_generate,
            f"{self.stage}/prompts_per_sec": len(groups) / max(t_generate, 1e-9),
        }
        for name in groups[0].components:
            values = [x for g in groups for x in g.components[name]]
            out[f"{self.stage}/reward/{name}"] = sum(values) / len(values)
        self.log_dict(out, batch_size=n)
        self.log(f"{self.stage}/reward", rewards.mean(), prog_bar=True, batch_size=n)

    def _watch_degenerate(self, groups: list[Group]) -> None:
        """Warn once per streak when no group has had any reward spread for N steps."""
        if all(g.degenerate for g in groups):
            self.degenerate_streak += 1
        else:
            self.degenerate_streak = 0
        if self.degenerate_warn_steps and self.degenerate_streak == self.degenerate_warn_steps:
            log.warning(
                "%s: every group's rewards have agreed for %d steps: no learning signal. "
                "Raise stage.grpo.group_size or the sampling temperature, use partial credit "
                "or a denser reward, or check %s/reward/<component> for a broken reward",
                self.stage,
                self.degenerate_streak,
                self.stage,
            )

    def _maybe_table(self, groups: list[Group]) -> None:
        if not self.table_every_n_steps or self.global_step % self.table_every_n_steps:
            return
        names = list(groups[0].components)
        rows = [
            [
                self.global_step,
                g.prompt_text,
                r["text"],
                g.rewards[j],
                *[g.components[k][j] for k in names],
                json.dumps(g.record.get("gold"), ensure_ascii=False),
            ]
            for g in groups
            for j, r in enumerate(g.replies)
        ]
        for logger in self.loggers:
            if hasattr(logger, "log_table"):
                logger.log_table(
                    key=f"{self.stage}/samples",
                    columns=["step", "prompt", "response", "reward", *names, "gold"],
                    data=rows,
                )

    # ----- validation: `val_samples` replies per held-out prompt, scored ------------------
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        k = self.val_samples
        prompts = [p for p in batch["prompt_ids"] for _ in range(k)]
        with gathered(self.actor):
            replies = generate(self.actor, self.tokenizer, prompts, self.val_sampling)
        records = batch.get("records") or [
            {"task": "free", "question": t, "gold": None} for t in batch["prompt_text"]
        ]
        records = [r for r in records for _ in range(k)]
        total, parts = self.rewards(records, [r["text"] for r in replies])
        self.val_reward.update(total)
        for name, values in parts.items():
            self.val_components[name].update(values)

    def on_validation_epoch_end(self) -> None:
        self.log(f"{self.stage}/val_reward", self.val_reward.compute(), prog_bar=True)
        self.val_reward.reset()
        for name, metric in self.val_components.items():
            self.log(f"{self.stage}/val_reward/{name}", metric.compute())
            metric.reset()

    # ----- optimizer, checkpoints -------------------------------------------------------------
    def configure_optimizers(self):
        opt, sched = optimizer_and_schedule(
            self.actor, self.optimizer_fn, self.scheduler, self.trainer
        )
        return [opt], [sched]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if not getattr(self, "_sharded", False):
            frozen = {n for n, p in self.named_parameters() if not p.requires_grad}
            checkpoint["state_dict"] = {
                k: v
                for k, v in checkpoint["state_dict"].items()
                if not k.startswith(FROZEN) and k not in frozen
            }
        # every rank's buffer (each samples its own groups) under `ranks`: a collective, as
        # Lightning builds the checkpoint on every rank and rank 0 writes it
        own = {"buffer": self.buffer.state_dict(), "degenerate_streak": self.degenerate_streak}
        ranks = [own]
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            ranks = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(ranks, own)
        checkpoint["grpo"] = {"ranks": ranks}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        ranks = (checkpoint.get("grpo") or {}).get("ranks") or [{}]
        dist = torch.distributed
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        if rank >= len(ranks):  # resumed on more ranks than saved: a fresh buffer there
            ranks = [*ranks, *[{}] * (rank + 1 - len(ranks))]
        state = ranks[rank] or {}
        self.buffer.load_state_dict(state.get("buffer") or {})
        self.degenerate_streak = int(state.get("degenerate_streak", 0))
