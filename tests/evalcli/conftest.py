"""Fixtures for `chimed-lit eval`: tiny random LLaMAs saved as stage `hf/` folders (with the demo
tokenizer), a fake run dir holding several stages, and an in-process runner of the command."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def save_tiny_lm(out: Path, tokenizer, seed: int, init_range: float = 0.02) -> Path:
    """A 2-layer, 32-wide LLaMA with `tokenizer`, saved loadable by `from_pretrained`; a large
    `init_range` (e.g. 1.0) makes its answers depend on the prompt, not only on position."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=2048,
        initializer_range=init_range,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_hf(tmp_path_factory: pytest.TempPathFactory, demo_tok) -> Path:
    """One tiny model dir (a stage's `hf/` folder)."""
    return save_tiny_lm(tmp_path_factory.mktemp("evalcli_model") / "hf", demo_tok, seed=0)


@pytest.fixture(scope="session")
def fake_run(tmp_path_factory: pytest.TempPathFactory, demo_tok) -> Path:
    """A run dir with pretrain/hf and sft/hf (different weights), a reward/hf classifier that
    task=all must skip, and a checkpoints-only stage without hf/."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    run = tmp_path_factory.mktemp("evalcli_run")
    save_tiny_lm(run / "sft" / "hf", demo_tok, seed=2)
    save_tiny_lm(run / "pretrain" / "hf", demo_tok, seed=1)
    torch.manual_seed(3)
    cfg = LlamaConfig(
        vocab_size=len(demo_tok),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=1,
        pad_token_id=demo_tok.pad_token_id,
    )
    LlamaForSequenceClassification(cfg).save_pretrained(run / "reward" / "hf")
    (run / "rlhf" / "checkpoints").mkdir(parents=True)
    return run


@pytest.fixture
def shared_file():
    """`shared_file("ner/cmeee_v2_dev.json")` -> its path as text; skips the test when the
    research-only samples are absent (they live beside the repo, never inside it)."""

    def find(rel: str) -> str:
        path = SHARED_DATA / rel
        if not path.is_file():
            pytest.skip(f"shared sample data not found: {path}")
        return str(path)

    return find


class EvalResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def run_eval_cli(capsys: pytest.CaptureFixture):
    """`chimed-lit eval ARGS` in this process, as a user would run it; captures the output."""
    from chimed_lit.cli.eval import eval_command

    def run(*args: str) -> EvalResult:
        saved = sys.argv
        try:
            code = eval_command(list(args))
        except SystemExit as e:  # Hydra exits on its own errors; the test sees the code
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:
            sys.argv = saved
        captured = capsys.readouterr()
        return EvalResult(code, captured.out, captured.err)

    return run
