"""Fixtures: a tiny random-init LLaMA and a byte-level BPE tokenizer trained here on a few
Chinese strings (no downloads), plus the path to the shared sample data."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

_CORPUS = [
    "[human]:感冒了怎么办？\n[bot]:多喝水，注意休息。</s>",
    "病人：我最近头痛发热，需要吃什么药？医生：建议先测体温，必要时服用退热药。",
    "请找出下面文本中的医学实体。实体类型只能是：疾病、临床表现、药物、身体部位。",
    "以下是医学考试的选择题，请直接给出正确答案的选项字母。答案：A B C D E",
    "请阅读下面的陈述，并根据你的真实看法选择一个选项。非常同意 同意 不确定 不同意 非常不同意",
    "高血压患者应当低盐饮食，规律服用降压药，定期复查血压。",
]


def _data_file(relative: str) -> Path:
    path = DATA / relative
    if not path.is_file():
        pytest.skip(f"shared sample data not available: {path}")
    return path


@pytest.fixture
def data_file():
    """`data_file("ner/cmeee_v2_dev.json")` -> path under shared/data; skips if it is absent
    (the samples are research-only and live beside the repo, never inside it)."""
    return _data_file


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Save a tiny random LLaMA + fast tokenizer to a temp dir (loadable by from_pretrained)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
    )
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny_llama")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_lm(tiny_model_dir: Path):
    """(model, tokenizer) loaded back from `tiny_model_dir`, in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    return model, tokenizer
