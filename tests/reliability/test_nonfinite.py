"""A NaN injected into the loss (the fault-injection callback poisons the input embeddings of the
trainable models for one step, so loss and gradients are NaN) is caught under both policies, in
automatic (pretrain) and manual (PPO) optimization."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from tests.reliability.conftest import QUIET, metrics, weights

TINY = [
    "stage=pretrain",
    *QUIET,
    "model.arch.num_hidden_layers=2",
    "scheduler.total_steps=4",
    "seed=21",
]


def fit(run_cli, out: Path, *extra: str):
    return run_cli("fit", *TINY, f"paths.output_dir={out}", *extra)


def test_skip_drops_exactly_the_poisoned_update(run_cli, tmp_path):
    r = fit(
        run_cli,
        tmp_path / "skip",
        "trainer.max_steps=3",
        "on_nonfinite=skip",
        "callbacks.fault_injection.nan_at_steps=[2]",
    )
    assert r.code == 0, r.err[-3000:]
    assert "pretrain: non-finite loss nan at step 2: update skipped (1 so far)" in r.out + r.err
    losses = metrics(tmp_path / "skip", "pretrain", "pretrain/train_loss")
    assert math.isnan(losses[2]) and all(math.isfinite(losses[s]) for s in (0, 1))
    assert metrics(tmp_path / "skip", "pretrain", "pretrain/nonfinite_skipped")[2] == 1.0
    # the skipped step changed nothing: the weights are those after 2 clean steps
    r = fit(run_cli, tmp_path / "two", "trainer.max_steps=2")
    assert r.code == 0, r.err[-3000:]
    a, b = (
        weights(tmp_path / "skip" / "pretrain" / "hf"),
        weights(tmp_path / "two" / "pretrain" / "hf"),
    )
    for k in a:
        assert torch.isfinite(a[k]).all() and torch.equal(a[k], b[k]), k


def test_stop_keeps_the_last_good_checkpoint_and_names_it(run_cli, tmp_path):
    out = tmp_path / "stop"
    r = fit(
        run_cli,
        out,
        "trainer.max_steps=4",
        "checkpoint.every_n_steps=2",
        "callbacks.fault_injection.nan_at_steps=[3]",
    )
    assert r.code == 5, r.err[-3000:]
    ckpt = out / "pretrain" / "checkpoints" / "step000002.ckpt"
    assert (
        f"chimed-lit: pretrain: non-finite loss nan at step 3; stopped before the update, "
        f"nothing of this state was saved; the last good checkpoint is {ckpt} "
        "(resume=true continues from it)"
    ) in r.out + r.err
    assert "Traceback" not in r.err
    assert sorted(p.name for p in (out / "pretrain" / "checkpoints").iterdir()) == [ckpt.name]
    assert (
        not (out / "pretrain" / "hf").exists() and not (out / "pretrain" / "summary.json").exists()
    )
    saved = torch.load(ckpt, weights_only=True, map_location="cpu")
    assert saved["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in saved["state_dict"].values())

    r = fit(run_cli, out, "trainer.max_steps=4", "checkpoint.every_n_steps=2", "resume=true")
    assert r.code == 0, r.err[-3000:]
    assert f"resuming pretrain from {ckpt}" in r.out + r.err


def test_stop_before_any_checkpoint_says_so(run_cli, tmp_path):
    r = fit(run_cli, tmp_path, "trainer.max_steps=2", "callbacks.fault_injection.nan_at_steps=[0]")
    assert r.code == 5, r.err[-3000:]
    assert "non-finite loss nan at step 0" in r.out + r.err
    assert "no checkpoint was saved before it" in r.out + r.err


PPO = [
    "stage=rlhf",
    *QUIET,
    "trainer.max_steps=2",
    "scheduler.total_steps=2",
    "data.batch_size=4",
    "data.max_records=16",
    "data.eval_batch_size=8",
    "stage.module.sampling.max_new_tokens=8",
    "stage.module.val_sampling.max_new_tokens=8",
    "stage.module.minibatch_size=2",
    "stage.module.ppo_epochs=1",
    "stage.module.target_approx_kl=null",
    "seed=23",
]


def test_ppo_nan_under_both_policies(run_cli, tmp_path, tiny_models):
    models = [f"stage.policy={tiny_models['lm']}", f"stage.reward_model={tiny_models['reward']}"]
    skip = tmp_path / "skip"
    r = run_cli(
        "fit",
        *PPO,
        *models,
        f"paths.output_dir={skip}",
        "on_nonfinite=skip",
        "callbacks.fault_injection.nan_at_steps=[1]",
    )
    assert r.code == 0, r.err[-3000:]
    # step 1's rollout: 2 minibatches x (actor + critic) updates, all dropped
    assert "rlhf: non-finite loss nan at step 1: update skipped (4 so far)" in r.out + r.err
    assert metrics(skip, "rlhf", "rlhf/nonfinite_skipped")[1] == 4.0
    assert all(torch.isfinite(v).all() for v in weights(skip / "rlhf" / "hf").values())

    stop = tmp_path / "stop"
    r = run_cli(
        "fit",
        *PPO,
        *models,
        f"paths.output_dir={stop}",
        "checkpoint.every_n_steps=1",
        "callbacks.fault_injection.nan_at_steps=[1]",
    )
    assert r.code == 5, r.err[-3000:]
    ckpt = stop / "rlhf" / "checkpoints" / "step000001.ckpt"
    assert "rlhf: non-finite loss nan at step 1; stopped before the update" in r.out + r.err
    assert f"the last good checkpoint is {ckpt}" in r.out + r.err
    assert not (stop / "rlhf" / "hf").exists()
