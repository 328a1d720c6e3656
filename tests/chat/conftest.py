"""The conversation shapes that rendering has got wrong before, and the templates to try."""

from __future__ import annotations

import copy

import pytest

from chimed_lit.chat.templates import TEMPLATES

U1 = {"role": "user", "content": "我头痛发热。"}
A1 = {"role": "assistant", "content": "发热多少度？"}
U2 = {"role": "user", "content": "三十八度五。"}
SYSTEM = {"role": "system", "content": "你是一名医生。"}

# contexts a reply follows: what training renders before that reply is the prompt
SHAPES: dict[str, list[dict[str, str]]] = {
    "single": [U1],
    "multi": [SYSTEM, U1, A1, U2],
    "two-users": [U1, U2],
    "two-users-mid": [U1, U2, A1, U1],
    "two-assistants": [U1, A1],
    "system-whitespace": [{"role": "system", "content": "  你是一名医生。\n "}, U1],
    "empty-user": [{"role": "user", "content": ""}],
    "empty-assistant": [U1, {"role": "assistant", "content": ""}, U2],
    "empty-system": [{"role": "system", "content": ""}, U1],
    "trailing-user": [U1, A1, U2, {"role": "user", "content": "还咳嗽。"}],
}
REPLY = {"role": "assistant", "content": "建议服用退热药，多喝水。"}

# ChatML-shaped, from the demo tokenizer's own specials: the `tokenizer` template under test
CHATML = (
    "{%- for m in messages -%}{{ '<s>' + m['role'] + '\\n' + m['content'] + '</s>\\n' }}"
    "{%- endfor -%}{%- if add_generation_prompt -%}{{ '<s>assistant\\n' }}{%- endif -%}"
)


@pytest.fixture(scope="session")
def chatml_tok(demo_tok):
    """A copy of the demo tokenizer whose own chat template is ChatML-shaped."""
    tok = copy.deepcopy(demo_tok)
    tok.chat_template = CHATML
    return tok


@pytest.fixture(scope="session", params=["chimed", "ziya", "tokenizer"])
def template_tok(request, demo_tok, chatml_tok):
    """(template name, tokenizer): the demo tokenizer's chimed template is its own; `tokenizer`
    is tried with a template unlike chimed so that a path ignoring the choice would show."""
    name = request.param
    assert demo_tok.chat_template == TEMPLATES["chimed"]
    return name, chatml_tok if name == "tokenizer" else demo_tok
