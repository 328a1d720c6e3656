"""Training, generation (PPO and rejection-sampling prompts, `generate`/`chat`) and evaluation
see the same prompt for every conversation shape and template: the text training puts before
a reply is the text the other paths render, token for token."""

from __future__ import annotations

import copy

import pytest

from chimed_lit.chat.render import prompt_text, render_prompt
from chimed_lit.data.packing import IGNORE
from chimed_lit.data.preference import PreferenceDataModule
from chimed_lit.data.prompts import PromptDataModule
from chimed_lit.data.sft import SFTDataModule
from chimed_lit.eval.api import make_render
from chimed_lit.eval.lm import encode
from chimed_lit.inference.generation import render_prompts
from chimed_lit.io.errors import ConfigError
from tests.chat.conftest import REPLY, SHAPES


def _sft_prompt_ids(tok, template: str, context: list[dict[str, str]]) -> list[int]:
    """The tokens SFT puts before the reply's first target token."""
    dm = SFTDataModule(tokenizer=tok, template=template, train_on="last_assistant")
    example = dm.tokenize({"messages": [*context, REPLY]})
    first = next(t for t, label in enumerate(example["labels"]) if label != IGNORE)
    return list(example["input_ids"][:first])


def _reward_prompt_ids(tok, template: str, context: list[dict[str, str]]) -> list[int]:
    """The tokens the reward model reads before the chosen response."""
    dm = PreferenceDataModule(tokenizer=tok, template=template)
    out = dm.tokenize({"prompt": context, "chosen": REPLY["content"], "rejected": "不知道。"})
    ids = list(out["chosen_ids"])
    return ids[: len(ids) - out["chosen_response_len"]]


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_path_renders_the_training_prompt(template_tok, shape):
    template, tok = template_tok
    context = SHAPES[shape]
    train = _sft_prompt_ids(tok, template, context)
    text = tok.decode(train)
    assert text.endswith(
        {"chimed": "[bot]:", "ziya": "<bot>:", "tokenizer": "assistant\n"}[template]
    )
    assert _reward_prompt_ids(tok, template, context) == train
    # generation: the conversation with a reference answer, or without one (then it ends where
    # a reply would start), through `generate`/`chat`'s render_prompts and `render_prompt`
    assert render_prompts(tok, [[*context, REPLY]], template) == [train]
    if context[-1]["role"] == "user":
        assert render_prompt(tok, context, template) == train
        ppo = PromptDataModule(tokenizer=tok, template=template, max_length=4096)
        assert list(ppo.tokenize({"messages": context})["prompt_ids"]) == train
    # evaluation: the same text, read back into the same ids
    rendered = make_render(template, tok)(context)
    assert rendered == text == prompt_text(tok, context, template)
    assert encode(tok, rendered) == train


def test_a_bos_adding_tokenizer_gets_no_extra_bos_in_evaluation(demo_tok):
    """A tokenizer that prepends BOS when asked for special tokens (LLaMA-2, Ziya2): training's
    `apply_chat_template` adds none, so evaluation must not either."""
    from tokenizers import processors

    tok = copy.deepcopy(demo_tok)
    bos = (tok.bos_token, tok.bos_token_id)
    tok._tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos[0]} $A", pair=f"{bos[0]} $A $B", special_tokens=[bos]
    )
    assert tok("你好")["input_ids"][0] == bos[1]  # it does add one when asked
    for shape in ("single", "multi"):
        context = SHAPES[shape]
        train = _sft_prompt_ids(tok, "chimed", context)
        assert encode(tok, make_render("chimed", tok)(context)) == train
        assert train[0] != bos[1]


def test_consecutive_user_turns_keep_their_headers(demo_tok):
    """The bug that made this test: eval merged `[human]:a\\nb\\n[bot]:`."""
    context = SHAPES["two-users"]
    assert (
        make_render("chimed", demo_tok)(context)
        == "[human]:我头痛发热。\n[human]:三十八度五。\n[bot]:"
    )


def test_system_whitespace_is_kept_as_training_renders_it(demo_tok):
    context = SHAPES["system-whitespace"]
    expected = "  你是一名医生。\n \n[human]:我头痛发热。\n[bot]:"
    assert make_render("chimed", demo_tok)(context) == expected


def test_a_bad_template_names_the_setting(demo_tok):
    with pytest.raises(ConfigError, match="template='vicuna': unknown chat template"):
        render_prompts(demo_tok, [SHAPES["single"]], "vicuna")
    with pytest.raises(ConfigError, match="eval.template=tokenizer"):
        make_render("tokenizer", _without_template(demo_tok))


def _without_template(tok):
    import copy

    bare = copy.deepcopy(tok)
    bare.chat_template = None
    return bare
