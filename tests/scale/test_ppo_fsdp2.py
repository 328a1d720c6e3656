"""PPO at scale on FSDP2: every model sharded, the actor gathered once per rollout."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from tests.scale.conftest import hf_weights, run_fit, summary

GATHER_SCRIPT = textwrap.dedent("""
    import os, types, torch, torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor
    from transformers import LlamaConfig, LlamaForCausalLM
    from chimed_lit.plugins.fsdp2 import shard_models
    from chimed_lit.modules.sharding import gathered

    dist.init_process_group("gloo", rank=0, world_size=1)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4))
    ids = torch.randint(3, 96, (2, 5))
    want = model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=0)
    mesh = init_device_mesh("cpu", (1,), mesh_dim_names=("data_parallel",))
    shard_models([model], types.SimpleNamespace(device_mesh=mesh, reshard_after_forward=True,
                                                cpu_offload=False))
    w = lambda: model.model.layers[1].mlp.up_proj.weight
    model(ids)
    assert isinstance(w(), DTensor), "sharded again after a forward (training behaviour)"
    gathers = []
    for layer in model.model.layers:
        layer.register_forward_pre_hook(lambda m, a: gathers.append(isinstance(
            m.mlp.up_proj.weight, DTensor)), prepend=True)  # runs before FSDP's own pre-hook
    with gathered(model):
        got = model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=0)
        assert not isinstance(w(), DTensor), "still gathered between tokens"
    assert isinstance(w(), DTensor), "resharded after the block"
    assert torch.equal(got, want), "same greedy tokens as the unsharded model"
    # before FSDP's hook the weight is sharded only at each layer's first call: one gather each
    assert sum(gathers) == 2 and len(gathers) == 2 * 6, gathers
    print("OK")
""")


def test_generation_gathers_the_sharded_actor_once_per_rollout():
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1", MASTER_PORT="29641")
    proc = subprocess.run(
        [sys.executable, "-c", GATHER_SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-4000:]


@pytest.mark.slow
def test_ppo_on_fsdp2_with_two_processes_trains_checkpoints_and_resumes(
    tmp_path, tiny_base, tiny_reward
):
    out = tmp_path / "ppo"
    args = [
        "stage=rlhf",
        f"stage.policy={tiny_base}",
        f"stage.reward_model={tiny_reward}",
        "strategy=fsdp2",
        "trainer.devices=2",
        "trainer.val_check_interval=3",
        "data.batch_size=4",
        "stage.module.minibatch_size=2",
        "stage.module.sampling.max_new_tokens=16",
        "stage.module.val_sampling.max_new_tokens=16",
        "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=1",
        "logger=csv",
    ]
    run_fit(out, *args, "trainer.max_steps=3")
    ckpt = out / "rlhf" / "checkpoints" / "last.ckpt"
    assert sorted(p.name for p in ckpt.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    run_fit(out, *args, "trainer.max_steps=5", "resume=true")  # continues from the shards
    s = summary(out, "rlhf")
    assert s["global_step"] == 5
    rows = [
        r for r in csv.DictReader((out / "rlhf" / "csv" / "metrics.csv").open()) if r.get("rlhf/kl")
    ]
    # one PPO update per rollout; the log appends across the resume: 1-3, then 4 and 5
    assert [int(r["step"]) for r in rows] == [0, 1, 2, 3, 4]
    assert all(
        math.isfinite(float(r["rlhf/kl"])) and math.isfinite(float(r["rlhf/value_loss"]))
        for r in rows
    )
    before, after = hf_weights_of(tiny_base), hf_weights(out, "rlhf")
    assert set(before) == set(after)
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the policy moved


def hf_weights_of(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])
def test_dapo_with_two_processes_updates_in_step(tmp_path, tiny_base, strategy):
    """The GRPO family on two processes: each rank samples, scores and buffers its own groups
    (dynamic sampling), and both update on the same steps (a rank that updated alone would
    hang the other in the gradient all-reduce)."""
    out = tmp_path / strategy
    run_fit(
        out,
        "stage=rlhf",
        "stage.algorithm=dapo",
        f"stage.policy={tiny_base}",
        "stage.reward=mcq+format+length",
        "stage.reward_options.length.min_chars=4",
        "stage.reward_options.length.max_chars=8",
        "stage.grpo.group_size=4",
        "stage.grpo.sampling.max_new_tokens=6",
        "stage.grpo.val_sampling.max_new_tokens=6",
        "data=mcq_demo",
        "data.batch_size=2",
        "data.eval_batch_size=4",
        "data.max_records=32",
        "logger=csv",
        "trainer.log_every_n_steps=1",
        "trainer.max_steps=4",
        "trainer.val_check_interval=1000",
        "scheduler.total_steps=4",
        f"strategy={strategy}",
        "trainer.devices=2",
    )
    s = summary(out, "rlhf")
    assert s["global_step"] == 4
    rows = list(csv.DictReader((out / "rlhf" / "csv" / "metrics.csv").open()))
    updated = [float(r["rlhf/updated"]) for r in rows if r.get("rlhf/updated")]
    assert len(updated) == 4 and sum(updated) >= 1, updated
    for name, tensor in hf_weights(out, "rlhf").items():
        assert torch.isfinite(tensor).all(), name
