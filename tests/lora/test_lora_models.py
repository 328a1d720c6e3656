"""`lora=on` applied by `build_models`: which parameters train, the adapters-off reference, one
base model per PPO pair, and clear errors for what cannot run."""

from __future__ import annotations

import pytest
import torch

from chimed_lit.io.errors import ConfigError
from chimed_lit.models.lora import count_parameters, peft_model_of
from chimed_lit.modules.optim import param_groups
from chimed_lit.modules.reward import score_sequences
from chimed_lit.modules.rollout_rows import layout
from chimed_lit.run.stage_runner import build_models


def _build(compose_fit, tiny_dirs, *overrides: str):
    from hydra.utils import instantiate

    cfg = compose_fit(*overrides)
    upstream = {"pretrain": str(tiny_dirs["sft"]), "sft": str(tiny_dirs["sft"])}
    return build_models(cfg, instantiate(cfg.model), upstream)


def _trainable(model: torch.nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def _perturb_adapters(model: torch.nn.Module) -> None:
    """Move every trainable parameter, as training would (lora_B starts at 0: a no-op)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn_like(p))


def test_sft_with_lora_trains_only_adapters(compose_fit, tiny_dirs):
    _, models = _build(compose_fit, tiny_dirs, "stage=sft", "lora=on", "lora.rank=4")
    model = models["model"]
    names = _trainable(model)
    assert names and all("lora_" in n for n in names), names[:5]
    targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in names} == targets
    n_train, n_all = count_parameters(model)
    assert 0 < n_train < 0.2 * n_all
    # the optimizer's groups (what configure_optimizers builds) hold exactly these parameters
    grouped = sum(p.numel() for g in param_groups(model, 0.01) for p in g["params"])
    assert grouped == n_train


def test_lora_off_leaves_the_model_whole(compose_fit, tiny_dirs):
    _, models = _build(compose_fit, tiny_dirs, "stage=sft")
    assert peft_model_of(models["model"]) is None
    assert count_parameters(models["model"])[0] == count_parameters(models["model"])[1]


def test_reward_with_lora_trains_adapters_and_head(compose_fit, tiny_dirs):
    _, models = _build(compose_fit, tiny_dirs, "stage=reward", "lora=on", "lora.rank=4")
    model = models["model"]
    names = _trainable(model)
    head = [n for n in names if n.startswith("score.modules_to_save.")]  # a trained copy
    assert head and all("lora_" in n for n in names if n not in head), names
    ids = torch.randint(5, 100, (2, 7))
    assert score_sequences(model, ids, torch.ones_like(ids)).shape == (2,)  # unwrapped in place


def test_ppo_with_lora_holds_one_policy_base_and_one_reward_base(compose_fit, tiny_dirs):
    from hydra.utils import instantiate

    overrides = (
        "stage=rlhf",
        f"stage.policy={tiny_dirs['sft']}",
        f"stage.reward_model={tiny_dirs['reward']}",
    )
    cfg_on = compose_fit(*overrides, "lora=on", "lora.rank=4")
    _, on = _build(compose_fit, tiny_dirs, *overrides, "lora=on", "lora.rank=4")
    _, off = _build(compose_fit, tiny_dirs, *overrides)
    assert on["ref"] is None and on["reward_model"] is None
    assert off["ref"] is not None and off["reward_model"] is not None
    module = instantiate(cfg_on.stage.module, **on)
    total = sum(p.numel() for p in module.parameters())
    base_lm = sum(p.numel() for p in off["ref"].parameters())
    base_rm = sum(p.numel() for p in off["reward_model"].parameters())
    adapters = count_parameters(on["actor"])[0] + count_parameters(on["critic"])[0]
    assert total == base_lm + base_rm + adapters  # no second copy of either base

    # the reference is the actor with its adapters off; the reward model the critic's base
    _perturb_adapters(on["actor"])
    _perturb_adapters(on["critic"])
    ids = torch.randint(5, 100, (2, 9))
    rows = layout(
        ids[:, :4].tolist(),
        [{"ids": r, "finished": False} for r in ids[:, 4:].tolist()],
        eos=2,
        pad=0,
    )
    with torch.no_grad():
        ref = module._ref_logps(rows)
        want_ref, _ = module._logps(off["ref"], rows)
        actor, _ = module._logps(on["actor"], rows)
        want_score = score_sequences(off["reward_model"], ids, torch.ones_like(ids))
    torch.testing.assert_close(ref, want_ref, atol=1e-5, rtol=0)
    assert not torch.allclose(actor, ref, atol=1e-3)  # the adapters do change the policy
    torch.testing.assert_close(module.score(rows), want_score, atol=1e-5, rtol=0)
    packed = rows.pack()  # the padding-free rollout through the adapters-off context managers
    with torch.no_grad():
        torch.testing.assert_close(module._ref_logps(packed), want_ref, atol=1e-5, rtol=0)
        torch.testing.assert_close(module.score(packed), want_score, atol=1e-5, rtol=0)


def test_dpo_with_lora_uses_the_adapter_free_policy_as_reference(compose_fit, tiny_dirs):
    from hydra.utils import instantiate

    cfg = compose_fit("stage=dpo", "lora=on", "lora.rank=4")
    _, models = _build(compose_fit, tiny_dirs, "stage=dpo", "lora=on", "lora.rank=4")
    assert models["ref"] is None
    module = instantiate(cfg.stage.module, **models)
    _perturb_adapters(models["model"])
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_dirs["sft"])
    ids = torch.randint(5, 100, (4, 9))
    batch = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "response_lengths": torch.tensor([3, 4, 2, 5]),
        "n_pairs": 2,
    }
    ref_summed, _ = module.reference_logps(batch)
    want, _ = module.sequence_logps(base, batch)
    torch.testing.assert_close(ref_summed, want.detach(), atol=1e-5, rtol=0)
    assert module.model.training  # restored after the adapters-off pass
    ckpt = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(ckpt)  # the frozen base is rebuilt on resume, not saved
    assert ckpt["state_dict"] and all("lora_" in k for k in ckpt["state_dict"])


def test_dpo_reference_free_loss_loads_no_reference(compose_fit, tiny_dirs):
    _, models = _build(compose_fit, tiny_dirs, "stage=dpo", "stage.module.loss_type=simpo")
    assert models["ref"] is None
    _, models = _build(compose_fit, tiny_dirs, "stage=dpo")
    assert models["ref"] is not None and models["ref"] is not models["model"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU message")
def test_qlora_on_cpu_is_a_clear_config_error(run_cli, tmp_path):
    r = run_cli("fit", "stage=sft", "lora=qlora", f"paths.output_dir={tmp_path}", "logger=csv")
    assert r.code == 2, r.err[-2000:]
    assert "CUDA" in r.err and "lora=on" in r.err and "Traceback" not in r.err
    assert not (tmp_path / "pretrain").exists()  # stopped before any stage ran
    r = run_cli("fit", "stage=sft", "lora=on", "lora.quantize=3bit", f"paths.output_dir={tmp_path}")
    assert r.code == 2 and "lora.quantize" in r.err


def test_unknown_architecture_names_the_missing_key(compose_fit, tiny_dirs):
    with pytest.raises(ConfigError, match=r"lora.target_modules.*llama"):
        _build(compose_fit, tiny_dirs, "stage=sft", "lora=on", "~lora.target_modules.llama")
