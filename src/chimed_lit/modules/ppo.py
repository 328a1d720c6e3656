"""`PPOModule`: RLHF by PPO with a frozen reference and reward model (InstructGPT recipe).

Models: `actor` (the policy, from the SFT output), `critic` (a value per token: the reward
model's backbone and scalar head, trained), `ref` (frozen copy of the SFT policy) and
`reward_model` (frozen). The math lives in `chimed_lit.losses` as pure functions.
With LoRA (`lora=on`) `ref` and `reward_model` are None: the reference is the actor with its
adapters disabled and the reward model is the critic with its adapters (and its trained head
copy) disabled, so one SFT base and one reward base sit in memory instead of two of each.

Knobs:
- `sampling`: rollout sampling (`max_new_tokens`, `temperature`, `top_p`, `top_k`).
- `ppo_epochs`, `minibatch_size`: passes and minibatch rows per rollout batch.
- `disable_dropout`: zero the actor's and critic's dropout (the PPO ratio compares forwards
  of the same weights; TRL's default too).
- `padding_free`: every forward after generation reads the rollout packed (no prompt padding;
  `modules/rollout_rows.py`); false keeps generation's left-padded rows. Same numbers either way.
- `clip_range`, `clip_range_value`, `vf_coef` (critic loss weight, reported), `entropy_coef`.
- `gamma`, `lam`: GAE over response tokens; advantages are whitened.
- `kl_coef`, `kl_target` (None: fixed coefficient), `kl_horizon`: the per-token KL penalty to the
  reference and its adaptive controller (Ziegler et al. 2019); `kl_estimator` (k1|k3) for it.
- `target_approx_kl`: stop a rollout's PPO epochs early when the policy moved this far.
- `missing_eos_penalty`: subtracted from the normalised score of a response with no EOS.
- `reward_mean` / `reward_std`: normalisation (None: read from the reward model's config).
- `actor_optimizer`, `critic_optimizer`, `scheduler`: separate optimizers and schedules.
- `table_every_n_steps`: a W&B table of prompts, responses and rewards.
- `max_grad_norm`: gradient clipping of each update (`trainer.gradient_clip_val` must stay null:
  Lightning clips only under automatic optimization).
One training step is one rollout batch, so `trainer.max_steps` counts rollouts and
`checkpoint.every_n_steps` is in rollouts. Metrics are `rlhf/...`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torchmetrics import MeanMetric

from chimed_lit.inference.generation import Sampling, generate
from chimed_lit.losses import (
    AdaptiveKLController,
    FixedKLController,
    compute_gae,
    entropy_from_logits,
    kl_penalty,
    masked_whiten,
    ppo_policy_loss,
    ppo_value_loss,
    token_rewards,
)
from chimed_lit.models import dropout
from chimed_lit.models.lora import peft_model_of
from chimed_lit.modules.optim import WarmupCosine, optimizer_and_schedule
from chimed_lit.modules.reward import score_sequences
from chimed_lit.modules.rollout_rows import (
    RolloutRows,
    behaviour_logps,
    layout,
    response_logits,
    response_logps,
    response_values,
)
from chimed_lit.modules.sharding import ShardedModelHook, gathered
from chimed_lit.plugins import lightning_internals

FROZEN = ("ref.", "reward_model.")


class PPOModule(ShardedModelHook, L.LightningModule):
    def __init__(
        self,
        actor: torch.nn.Module,
        critic: torch.nn.Module,
        ref: torch.nn.Module | None,
        reward_model: torch.nn.Module | None,
        tokenizer: Any,
        actor_optimizer: Callable[..., torch.optim.Optimizer],
        critic_optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: WarmupCosine | None = None,
        sampling: dict | None = None,
        ppo_epochs: int = 2,
        minibatch_size: int = 4,
        clip_range: float = 0.2,
        clip_range_value: float = 0.2,
        vf_coef: float = 0.5,
        entropy_coef: float = 0.0,
        gamma: float = 1.0,
        lam: float = 0.95,
        kl_coef: float = 0.05,
        kl_target: float | None = None,
        kl_horizon: int = 10000,
        kl_estimator: str = "k1",
        target_approx_kl: float | None = 0.1,
        missing_eos_penalty: float = 1.0,
        reward_mean: float | None = None,
        reward_std: float | None = None,
        val_sampling: dict | None = None,
        table_every_n_steps: int = 0,
        max_grad_norm: float | None = 1.0,
        padding_free: bool = True,
        disable_dropout: bool = True,
        stage: str = "rlhf",
    ):
        super().__init__()
        self.automatic_optimization = False
        self.strict_loading = False  # frozen models are rebuilt from their dirs, not checkpointed
        self.actor, self.critic, self.ref, self.reward_model = actor, critic, ref, reward_model
        for frozen in (ref, reward_model):
            if frozen is not None:
                frozen.eval().requires_grad_(False)
        if disable_dropout:
            for trained in (actor, critic):
                dropout.disable_dropout(trained)
        self.tokenizer, self.stage = tokenizer, stage
        self.actor_optimizer_fn, self.critic_optimizer_fn = actor_optimizer, critic_optimizer
        self.scheduler = scheduler or WarmupCosine(warmup_ratio=0.0, min_lr_ratio=1.0)
        self.sampling = Sampling(
            **{"do_sample": True, "temperature": 1.0, "top_p": 1.0, **(sampling or {})}
        )
        self.val_sampling = Sampling(**{"do_sample": False, **(val_sampling or sampling or {})})
        self.ppo_epochs, self.minibatch_size = ppo_epochs, minibatch_size
        self.clip_range, self.clip_range_value = clip_range, clip_range_value
        self.vf_coef, self.entropy_coef, self.gamma, self.lam = vf_coef, entropy_coef, gamma, lam
        self.kl_estimator, self.target_approx_kl = kl_estimator, target_approx_kl
        self.kl_ctl = (
            FixedKLController(kl_coef)
            if kl_target is None
            else AdaptiveKLController(kl_coef, kl_target, kl_horizon)
        )
        self.missing_eos_penalty = missing_eos_penalty
        cfg = (reward_model if reward_model is not None else critic).config
        self.reward_mean = (
            reward_mean if reward_mean is not None else getattr(cfg, "reward_mean", 0.0)
        )
        self.reward_std = reward_std if reward_std is not None else getattr(cfg, "reward_std", 1.0)
        self.table_every_n_steps, self.max_grad_norm = table_every_n_steps, max_grad_norm
        self.padding_free = padding_free
        self.val_reward, self.val_eos = MeanMetric(), MeanMetric()

    @property
    def model(self) -> torch.nn.Module:
        """What a stage exports as `hf/`: the policy."""
        return self.actor

    # ----- rollout pieces (layout and forwards: modules/rollout_rows.py) -------------------
    def _sequences(self, prompts: list[list[int]], replies: list[dict[str, Any]]) -> RolloutRows:
        return layout(
            prompts, replies, self.tokenizer.eos_token_id, self.tokenizer.pad_token_id, self.device
        )

    def _view(self, rows: RolloutRows) -> RolloutRows:
        """What the forwards read: the rows packed (`padding_free`) or as generation laid them."""
        return rows.pack() if self.padding_free else rows

    def _logps(self, model: torch.nn.Module, rows: RolloutRows, with_entropy: bool = False):
        """[B, R] log-probs of the response tokens under the sampling distribution: logits
        divided by the rollout temperature, so the PPO ratio compares the policy that sampled."""
        logits = response_logits(model, rows)
        if self.sampling.do_sample and self.sampling.temperature != 1.0:
            logits = logits / self.sampling.temperature
        logp = response_logps(logits, rows)
        if not with_entropy:
            return logp, None
        # entropy is a statistic unless `entropy_coef` puts it in the loss; as a statistic it
        # gets no graph (no backward through a second [tokens, vocab] softmax)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.entropy_coef != 0):
            return logp, entropy_from_logits(logits[:, :-1], rows.response_mask)

    def score(self, rows: RolloutRows) -> torch.Tensor:
        """Raw reward-model scores at each sequence's last token."""
        with torch.no_grad():
            ends = rows.last if rows.packed else None
            if self.reward_model is not None:
                return score_sequences(
                    self.reward_model, rows.ids, rows.mask, position_ids=rows.positions, ends=ends
                )
            with peft_model_of(self.critic).disable_adapter():  # LoRA: the critic's base
                return score_sequences(
                    self.critic, rows.ids, rows.mask, position_ids=rows.positions, ends=ends
                )

    def _ref_logps(self, rows: RolloutRows) -> torch.Tensor:
        """The frozen reference's token log-probs (call under no_grad): the `ref` model, or
        with LoRA the actor with its adapters disabled."""
        if self.ref is not None:
            return self._logps(self.ref, rows)[0]
        with self.actor.disable_adapter():
            return self._logps(self.actor, rows)[0]

    # ----- one PPO step per rollout batch ----------------------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        prompts = batch["prompt_ids"]

        # 1. generate: sample responses with the current policy (KV cache, left-padded prompts)
        t0 = time.perf_counter()
        self.actor.eval()
        with gathered(self.actor):  # FSDP2: all-gather the actor once per rollout, not per token
            replies = generate(self.actor, self.tokenizer, prompts, self.sampling, with_logps=True)
        self.actor.train()
        rows = self._sequences(prompts, replies)
        view = self._view(rows)
        resp_mask = rows.response_mask  # [B, R]: every per-token quantity lives on this grid
        t_generate = time.perf_counter() - t0

        # 2. score: normalised reward at the end, a penalty without EOS, per-token KL to the ref,
        # and the critic's values (with their graph when one minibatch is the whole batch: the
        # first value update then reuses this forward instead of repeating it)
        t0 = time.perf_counter()
        finished = torch.tensor([r["finished"] for r in replies], device=self.device)
        raw = self.score(view)
        score = (raw - self.reward_mean) / max(self.reward_std, 1e-6)
        score = score - self.missing_eos_penalty * (~finished).float()
        with torch.no_grad():
            old_logp = behaviour_logps(replies, rows)
            ref_logp = self._ref_logps(view)
        one_pass = self._one_minibatch(len(prompts))
        with torch.set_grad_enabled(one_pass):
            values = response_values(self.critic, view)
        old_values = values.detach() * resp_mask
        kl = kl_penalty(old_logp, ref_logp, self.kl_estimator) * resp_mask
        kl_coef = self.kl_ctl.value

        # 3. advantages: GAE over response tokens only, whitened
        rewards = token_rewards(score, kl, kl_coef, resp_mask)
        advantages, returns = compute_gae(rewards, old_values, resp_mask, self.gamma, self.lam)
        advantages = masked_whiten(advantages, resp_mask)

        # 4. optimize: K epochs of clipped policy and value updates over minibatches
        stats = self._optimize(
            rows,
            old_logp,
            old_values,
            advantages,
            returns,
            first=(view, values) if one_pass else None,
        )
        self.kl_ctl.update(float((kl.sum(-1)).mean()), len(prompts))
        for sched in self.lr_schedulers():
            sched.step()
        self._count_rollout()
        t_train = time.perf_counter() - t0

        n = len(prompts)
        k3 = (kl_penalty(old_logp, ref_logp, "k3") * resp_mask).sum(-1).mean()
        self.log_dict(
            {
                f"{self.stage}/reward_mean": raw.mean(),
                f"{self.stage}/reward_std": raw.std(),
                f"{self.stage}/score_mean": score.mean(),
                f"{self.stage}/kl": kl.sum(-1).mean(),
                f"{self.stage}/kl_k3": k3,
                f"{self.stage}/kl_coef": float(kl_coef),
                f"{self.stage}/response_length": resp_mask.sum(-1).mean(),
                f"{self.stage}/eos_rate": finished.float().mean(),
                f"{self.stage}/time_generate": t_generate,
                f"{self.stage}/time_train": t_train,
                f"{self.stage}/lr": self.optimizers()[0].param_groups[0]["lr"],
                **{f"{self.stage}/{k}": v for k, v in stats.items()},
            },
            batch_size=n,
            prog_bar=False,
        )
        self.log(f"{self.stage}/reward", raw.mean(), prog_bar=True, batch_size=n)
        self._maybe_table(batch, replies, raw)

    def _one_minibatch(self, n: int) -> bool:
        """One minibatch covers the rollout: the critic's step-2 forward is then exactly the
        first value update's forward (same weights, same rows) and is kept for it."""
        return self.minibatch_size >= n and self.ppo_epochs > 0

    def _optimize(
        self,
        rollout: RolloutRows,
        old_logp,
        old_values,
        advantages,
        returns,
        first: tuple[RolloutRows, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """K epochs over minibatches; each updates the critic, then the actor (independent
        models and losses, so the order changes nothing but memory: the critic's graph from
        step 2 is freed before the actor's is built). `first`: the whole batch's view and its
        live values, used by the first critic update."""
        actor_opt, critic_opt = (o.optimizer for o in self.optimizers())
        clip = self.max_grad_norm  # Lightning clips only under automatic optimization
        sums: dict[str, list[torch.Tensor]] = {}
        n = rollout.ids.size(0)
        slices = [slice(s, s + self.minibatch_size) for s in range(0, n, self.minibatch_size)]
        views = [first[0]] if first is not None else [self._view(rollout.rows(r)) for r in slices]
        live = first[1] if first is not None else None
        for _ in range(self.ppo_epochs):
            stop = False
            for rows, mini in zip(slices, views, strict=True):
                m = mini.response_mask
                values = live if live is not None else response_values(self.critic, mini)
                live = None
                v_loss, v_stats = ppo_value_loss(
                    values, old_values[rows], returns[rows], m, self.clip_range_value
                )
                critic_opt.zero_grad(set_to_none=True)
                self.manual_backward(self.vf_coef * v_loss)
                self._before_update(critic_opt)
                if clip:
                    torch.nn.utils.clip_grad_norm_(self.critic.parameters(), clip)
                critic_opt.step()

                logp, entropy = self._logps(self.actor, mini, with_entropy=True)
                pi_loss, pi_stats = ppo_policy_loss(
                    logp, old_logp[rows], advantages[rows], m, self.clip_range
                )
                actor_opt.zero_grad(set_to_none=True)
                self.manual_backward(pi_loss - self.entropy_coef * entropy)
                self._before_update(actor_opt)
                if clip:
                    torch.nn.utils.clip_grad_norm_(self.actor.parameters(), clip)
                actor_opt.step()

                for k, v in {**pi_stats, **v_stats, "entropy": entropy.detach()}.items():
                    sums.setdefault(k, []).append(v.detach().float())
                if (
                    self.target_approx_kl is not None
                    and pi_stats["approx_kl"] > self.target_approx_kl
                ):
                    stop = True  # the policy moved far enough from the rollout's: new samples
                    break
            if stop:
                break
        out = {k: torch.stack(v).mean() for k, v in sums.items()}
        out["updates"] = torch.tensor(float(len(sums.get("policy_loss", []))))
        return out

    def _before_update(self, optimizer: torch.optim.Optimizer) -> None:
        """Callbacks' `on_before_optimizer_step`, which Lightning calls only when it steps the
        optimizer itself: the non-finite guard checks (and may drop) each update here."""
        lightning_internals.run_before_optimizer_step_hooks(self.trainer, self, optimizer)

    def _count_rollout(self) -> None:
        """Count one rollout as one trainer step. Optimizers are stepped directly (several
        minibatch updates per rollout), so Lightning's manual-optimization step counter, which
        `global_step`, `max_steps` and checkpoint frequency read, is advanced here once."""
        lightning_internals.count_optimizer_step(self.trainer)

    def _maybe_table(self, batch: dict[str, Any], replies: list[dict[str, Any]], raw) -> None:
        if not self.table_every_n_steps or self.global_step % self.table_every_n_steps:
            return
        rows = [
            [self.global_step, p, r["text"], float(s)]
            for p, r, s in zip(batch["prompt_text"], replies, raw.tolist(), strict=True)
        ]
        for logger in self.loggers:
            if hasattr(logger, "log_table"):
                logger.log_table(
                    key=f"{self.stage}/samples",
                    columns=["step", "prompt", "response", "reward"],
                    data=rows,
                )

    # ----- validation: greedy replies to held-out prompts, scored ---------------------------
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        with gathered(self.actor):
            replies = generate(self.actor, self.tokenizer, batch["prompt_ids"], self.val_sampling)
        raw = self.score(self._view(self._sequences(batch["prompt_ids"], replies)))
        self.val_reward.update(raw)
        self.val_eos.update(torch.tensor([float(r["finished"]) for r in replies]))

    def on_validation_epoch_end(self) -> None:
        self.log(f"{self.stage}/val_reward", self.val_reward.compute(), prog_bar=True)
        self.log(f"{self.stage}/val_eos_rate", self.val_eos.compute())
        self.val_reward.reset()
        self.val_eos.reset()

    # ----- optimizers, checkpoints ------------------------------------------------------------
    def configure_optimizers(self):
        actor = optimizer_and_schedule(
            self.actor, self.actor_optimizer_fn, self.scheduler, self.trainer
        )
        critic = optimizer_and_schedule(
            self.critic, self.critic_optimizer_fn, self.scheduler, self.trainer
        )
        return [actor[0], critic[0]], [actor[1], critic[1]]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if not getattr(self, "_sharded", False):  # FSDP2 loads shards strictly: keep them all
            # frozen weights (reference, reward model, a LoRA base) are rebuilt from their dirs
            frozen = {n for n, p in self.named_parameters() if not p.requires_grad}
            checkpoint["state_dict"] = {
                k: v
                for k, v in checkpoint["state_dict"].items()
                if not k.startswith(FROZEN) and k not in frozen
            }
        checkpoint["kl_ctl"] = self.kl_ctl.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "kl_ctl" in checkpoint:
            self.kl_ctl.load_state_dict(checkpoint["kl_ctl"])
