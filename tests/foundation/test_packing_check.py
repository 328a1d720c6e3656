"""Packed batches need models that keep packed sequences apart: the probe tells LLaMA-family
attention (block mask, per-document calls) from ALiBi attention (BLOOM, as Baichuan2-13B), which
ignores restarting position ids; packed data then stops with a config error, PPO falls back to
padded rollout rows."""

from __future__ import annotations

import logging

import pytest
import torch
from transformers import BloomConfig, BloomForCausalLM

from chimed_lit.io.errors import ConfigError
from chimed_lit.models.factory import ModelFactory
from chimed_lit.models.packing_check import (
    KNOWN_TO_KEEP_APART,
    check_packing,
    keeps_sequences_apart,
)

ARCH = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
}


def _bloom(vocab: int = 96) -> BloomForCausalLM:
    torch.manual_seed(0)
    return BloomForCausalLM(BloomConfig(vocab_size=vocab, hidden_size=32, n_layer=2, n_head=2))


@pytest.mark.parametrize("attn", ["sdpa", "eager", "sdpa_documents"])
def test_llama_keeps_packed_sequences_apart(tmp_path, attn: str) -> None:
    factory = ModelFactory(cache_dir=str(tmp_path), arch=ARCH, attn_implementation=attn)
    tok = factory.load_tokenizer()
    lm, rm = factory.load_causal_lm(tok), factory.load_reward_model(tok)
    lm.train()
    assert keeps_sequences_apart(lm) and keeps_sequences_apart(rm)
    assert lm.training  # the probe restores the mode it found
    assert keeps_sequences_apart(lm.to(torch.bfloat16))


@pytest.mark.parametrize("model_type", sorted(KNOWN_TO_KEEP_APART))
def test_the_types_not_probed_do_keep_packed_sequences_apart(model_type: str) -> None:
    """The list that skips the probe (big models pay no CPU forwards) is itself checked by it,
    mixture-of-experts layers included (their rounding differs with the tokens around)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(
        model_type,
        vocab_size=96,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=16,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    assert keeps_sequences_apart(model)
    assert keeps_sequences_apart(model.to(torch.bfloat16))


def test_alibi_attention_is_caught_in_any_precision() -> None:
    assert not keeps_sequences_apart(_bloom())
    assert not keeps_sequences_apart(_bloom().to(torch.bfloat16))


def test_check_packing_errors_warns_or_stays_quiet(tmp_path, caplog) -> None:
    factory = ModelFactory(cache_dir=str(tmp_path), arch=ARCH)
    llama = factory.load_causal_lm(factory.load_tokenizer())
    bloom = _bloom()
    with pytest.raises(ConfigError, match=r"model \(BloomForCausalLM\).*data\.pack=false"):
        check_packing("reward", {"model": bloom}, data_packs=True)
    assert check_packing("pretrain", {"model": llama}, data_packs=True) == {}
    assert check_packing("sft", {"model": bloom}, data_packs=False) == {}  # padded rows: fine
    ppo = {"padding_free": True}
    with caplog.at_level(logging.WARNING, logger="chimed_lit"):
        got = check_packing("rlhf", {"actor": llama, "critic": bloom, "ref": None}, False, ppo)
    assert got == {"padding_free": False}
    assert "critic (BloomForCausalLM) attends across packed sequences" in caplog.text
    assert check_packing("rlhf", {"actor": llama, "ref": llama}, False, ppo) == {}


def test_cli_names_the_fix_for_a_model_that_mixes_packed_documents(
    run_cli, tmp_path, demo_tok
) -> None:
    """`fit stage=pretrain` on a saved BLOOM: packing stops with exit 2 and the fix;
    `data.pack=false` trains it on one document per row."""
    model_dir = tmp_path / "bloom"
    _bloom(len(demo_tok)).save_pretrained(model_dir)
    demo_tok.save_pretrained(model_dir)
    common = (
        "fit",
        "stage=pretrain",
        f"model.pretrained={model_dir}",
        "model.attn_implementation=eager",
        "logger=csv",
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "data.batch_size=2",
        "data.max_length=64",
    )
    packed = run_cli(*common, f"paths.output_dir={tmp_path / 'a'}")
    assert packed.code == 2, packed.err[-2000:]
    assert "attends across packed sequences" in packed.err and "data.pack=false" in packed.err
    assert not (tmp_path / "a" / "pretrain" / "hf").exists()
    padded = run_cli(*common, f"paths.output_dir={tmp_path / 'b'}", "data.pack=false")
    assert padded.code == 0, padded.err[-2000:]
    assert (tmp_path / "b" / "pretrain" / "hf" / "config.json").is_file()
