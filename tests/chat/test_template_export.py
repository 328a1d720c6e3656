"""The chat template a tokenizer carries (the demo tokenizer's, and the one an export saves
beside the weights) renders what the renderer renders: a user who runs plain transformers'
`apply_chat_template(..., add_generation_prompt=True)` on an exported model gets the prompt the
model was trained on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from chimed_lit.chat.render import prompt_text, render_prompt, render_text
from chimed_lit.inference.generation import load_for_inference, render_prompts
from chimed_lit.models.export import export_hf
from chimed_lit.models.factory import ModelFactory
from tests.chat.conftest import REPLY, SHAPES

ARCH = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
}


@pytest.fixture(scope="module", params=["chimed", "ziya"])
def exported(request, tmp_path_factory) -> tuple[str, Path]:
    """(template, the `hf/` dir of a tiny model trained-for-nothing with that chat template)."""
    template = request.param
    factory = ModelFactory(
        cache_dir=str(tmp_path_factory.mktemp("cache")), arch=ARCH, chat_template=template
    )
    tok = factory.load_tokenizer()
    torch.manual_seed(0)
    model = factory.load_causal_lm(tok)
    out = export_hf(model, tok, tmp_path_factory.mktemp(f"stage-{template}"))
    return template, Path(out["hf_dir"])


@pytest.mark.parametrize("shape", list(SHAPES))
def test_demo_tokenizer_template_renders_the_chimed_prompt(demo_tok, shape):
    context = SHAPES[shape]
    own = demo_tok.apply_chat_template(context, add_generation_prompt=True, tokenize=False)
    assert own == prompt_text(demo_tok, context, "chimed")
    whole = [*context, REPLY]
    assert demo_tok.apply_chat_template(whole, tokenize=False) == render_text(demo_tok, whole)


def test_exported_tokenizer_template_renders_the_training_prompt(exported, demo_tok):
    from transformers import AutoTokenizer

    template, hf_dir = exported
    saved = AutoTokenizer.from_pretrained(str(hf_dir))
    _, inference_tok = load_for_inference(str(hf_dir), device="cpu")
    for shape, context in SHAPES.items():
        expected = prompt_text(demo_tok, context, template)
        got = saved.apply_chat_template(context, add_generation_prompt=True, tokenize=False)
        assert got == expected, shape
        ids = saved.apply_chat_template(context, add_generation_prompt=True, return_dict=False)
        assert list(ids) == render_prompt(demo_tok, [*context, REPLY], template), shape
        # `chimed-lit generate` / `chat` on the export render with its own template
        replied = [[*context, REPLY]]
        assert render_prompts(inference_tok, replied, "tokenizer") == [list(ids)], shape
