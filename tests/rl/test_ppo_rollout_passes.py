"""PPO's passes over a rollout, run by the real Lightning Trainer: padding-free forwards train the
models as the padded ones do, and the critic's rollout forward doubles as the first value
update's forward when one minibatch covers the batch (one critic forward fewer per rollout)."""

from __future__ import annotations

import copy
from functools import partial

import lightning as L
import torch
from torch.utils.data import DataLoader

from chimed_lit.models.factory import ModelFactory
from chimed_lit.modules.ppo import PPOModule

ARCH = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
}
TEXTS = ["头痛怎么办", "发烧三天，咳嗽，需要去医院吗", "孩子拉肚子", "高血压能喝酒吗？"]


class NoReuse(PPOModule):
    """Every value update runs its own critic forward (the behaviour before the reuse)."""

    def _one_minibatch(self, n: int) -> bool:
        return False


def _setup(tmp_path, demo_tok):
    factory = ModelFactory(cache_dir=str(tmp_path), arch=ARCH, attn_implementation="sdpa_documents")
    torch.manual_seed(0)
    actor = factory.load_causal_lm(demo_tok)
    critic = factory.load_reward_model(demo_tok)
    torch.nn.init.normal_(critic.score.weight, std=0.5)
    prompts = [{"prompt_ids": demo_tok(t)["input_ids"], "prompt_text": t} for t in TEXTS]
    return actor, critic, prompts


def _fit(
    cls, actor, critic, prompts, demo_tok, minibatch_size: int = 4, padding_free: bool = True, **kw
) -> tuple[PPOModule, int]:
    """Two rollouts of four prompts, two PPO epochs; returns the module and how many times the
    critic's backbone ran (scoring uses the separate reward model)."""
    module = cls(
        actor=copy.deepcopy(actor),
        critic=copy.deepcopy(critic),
        ref=copy.deepcopy(actor),
        reward_model=copy.deepcopy(critic),
        tokenizer=demo_tok,
        actor_optimizer=partial(torch.optim.AdamW, lr=1e-3),
        critic_optimizer=partial(torch.optim.AdamW, lr=1e-3),
        sampling={"max_new_tokens": 6},
        ppo_epochs=2,
        minibatch_size=minibatch_size,
        target_approx_kl=None,
        kl_target=None,
        padding_free=padding_free,
        **kw,
    )
    calls = []
    module.critic.model.register_forward_hook(lambda *a: calls.append(1))
    loader = DataLoader(
        prompts,
        batch_size=4,
        collate_fn=lambda rows: {
            "prompt_ids": [r["prompt_ids"] for r in rows],
            "prompt_text": [r["prompt_text"] for r in rows],
        },
    )
    L.seed_everything(0, verbose=False)
    trainer = L.Trainer(
        max_steps=2,
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(module, train_dataloaders=loader)
    return module, len(calls)


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module, atol: float) -> None:
    for (name, x), y in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(x, y, atol=atol, rtol=0, msg=name)


def test_critic_rollout_forward_is_the_first_value_update(tmp_path, demo_tok, one_thread):
    actor, critic, prompts = _setup(tmp_path, demo_tok)
    reused, calls = _fit(PPOModule, actor, critic, prompts, demo_tok)
    fresh, calls_fresh = _fit(NoReuse, actor, critic, prompts, demo_tok)
    # per rollout: 2 epochs x 1 minibatch forwards, against 1 (old values) + 2 without reuse
    assert (calls, calls_fresh) == (2 * 2, 2 * 3)
    _assert_same_weights(reused.critic, fresh.critic, atol=1e-6)
    _assert_same_weights(reused.actor, fresh.actor, atol=1e-6)
    assert not torch.allclose(reused.critic.score.weight, critic.score.weight)  # it did train
    # two minibatches per rollout: old values by their own forward, then 2 epochs x 2 each
    _, calls_split = _fit(PPOModule, actor, critic, prompts, demo_tok, minibatch_size=2)
    assert calls_split == 2 * (1 + 2 * 2)


def test_padding_free_trains_as_the_padded_rows(tmp_path, demo_tok, one_thread):
    """Same seed, same rollouts: the packed forwards' updates equal the padded ones' up to float
    rounding (the two layouts sum in different orders)."""
    actor, critic, prompts = _setup(tmp_path, demo_tok)
    packed, _ = _fit(PPOModule, actor, critic, prompts, demo_tok, padding_free=True)
    padded, _ = _fit(PPOModule, actor, critic, prompts, demo_tok, padding_free=False)
    _assert_same_weights(packed.actor, padded.actor, atol=1e-4)
    _assert_same_weights(packed.critic, padded.critic, atol=1e-4)
    moved = max(
        (p - q).abs().max().item()
        for p, q in zip(packed.actor.parameters(), actor.parameters(), strict=True)
    )
    assert moved > 1e-3  # two rollouts of updates at lr 1e-3 moved the policy


def test_ppo_switches_dropout_off_in_actor_and_critic(demo_tok):
    """A model with dropout (GPT-2's `nn.Dropout`s, a LLaMA's `attention_dropout`) gives two
    different train-mode forwards; under PPO (`disable_dropout`, the default) they are equal."""
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForSequenceClassification,
    )

    gpt2 = GPT2Config(
        vocab_size=len(demo_tok), n_embd=32, n_layer=2, n_head=2, pad_token_id=demo_tok.pad_token_id
    )
    llama = LlamaConfig(
        vocab_size=len(demo_tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        attention_dropout=0.5,
        num_labels=1,
        pad_token_id=demo_tok.pad_token_id,
        attn_implementation="eager",
    )
    ids = torch.tensor([demo_tok("头痛怎么办，发烧三天")["input_ids"]])

    def models():
        torch.manual_seed(0)
        return GPT2LMHeadModel(gpt2).train(), LlamaForSequenceClassification(llama).train()

    def twice_same(model) -> bool:
        return torch.equal(model(input_ids=ids).logits, model(input_ids=ids).logits)

    actor, critic = models()
    assert not twice_same(actor) and not twice_same(critic)  # dropout is live
    kwargs = dict(
        ref=None,
        reward_model=None,
        tokenizer=demo_tok,
        actor_optimizer=partial(torch.optim.AdamW),
        critic_optimizer=partial(torch.optim.AdamW),
    )
    module = PPOModule(actor=actor, critic=critic, **kwargs)
    assert module.actor.training and module.critic.training
    assert twice_same(module.actor) and twice_same(module.critic)
    kept = PPOModule(*models(), disable_dropout=False, **kwargs)
    assert not twice_same(kept.actor) and not twice_same(kept.critic)


def test_entropy_has_a_graph_only_when_the_loss_uses_it(tmp_path, demo_tok, one_thread):
    """With `entropy_coef=0` the entropy is a logged statistic, built without a graph (no
    backward through a second softmax); with a bonus it is in the loss and moves the actor."""
    from chimed_lit.modules.rollout_rows import layout

    actor, critic, prompts = _setup(tmp_path, demo_tok)
    plain, _ = _fit(PPOModule, actor, critic, prompts, demo_tok)
    bonus, _ = _fit(PPOModule, actor, critic, prompts, demo_tok, entropy_coef=1.0)
    assert not torch.allclose(plain.actor.lm_head.weight, bonus.actor.lm_head.weight, atol=1e-5)
    rows = layout(
        [p["prompt_ids"] for p in prompts],
        [{"ids": [5, 6, 7], "finished": False}] * len(prompts),
        demo_tok.eos_token_id,
        demo_tok.pad_token_id,
    ).pack()
    logp, entropy = plain._logps(plain.actor, rows, with_entropy=True)
    assert logp.requires_grad and not entropy.requires_grad
    logp, entropy = bonus._logps(bonus.actor, rows, with_entropy=True)
    assert entropy.requires_grad and entropy > 0
