"""`render_tokens` gives exactly `apply_chat_template`'s ids, and its assistant mask covers
exactly each answer and its end-of-turn token."""

from __future__ import annotations

from pathlib import Path

import pytest

from chimed_lit.chat.render import render_prompt, render_text, render_tokens
from chimed_lit.chat.templates import TEMPLATES
from chimed_lit.io.errors import ConfigError

# ChatML-shaped, built from the demo tokenizer's own specials: a newline follows each turn's end.
CHATML = (
    "{%- for m in messages -%}{{ '<s>' + m['role'] + '\\n' + m['content'] + '</s>\\n' }}"
    "{%- endfor -%}{%- if add_generation_prompt -%}{{ '<s>assistant\\n' }}{%- endif -%}"
)

SINGLE = [
    {"role": "user", "content": "失眠是什么原因引起的？"},
    {"role": "assistant", "content": "常见原因是压力和焦虑。"},
]
MULTI = [
    {"role": "system", "content": "你是一名医生。"},
    {"role": "user", "content": "我头痛发热。"},
    {"role": "assistant", "content": "发热多少度？"},
    {"role": "user", "content": "三十八度五。"},
    {"role": "assistant", "content": "建议服用退热药，多喝水。"},
]
CASES = {"single": SINGLE, "multi": MULTI, "prompt-only": MULTI[:4]}


@pytest.fixture(scope="module", params=["chimed", "ziya", "chatml"])
def saved(request, tok, tmp_path_factory):
    """(template name, a tokenizer saved with that chat template and reloaded from disk)."""
    from transformers import AutoTokenizer

    name = request.param
    tok.chat_template = CHATML if name == "chatml" else TEMPLATES[name]
    path: Path = tmp_path_factory.mktemp(f"tok-{name}")
    tok.save_pretrained(path)
    tok.chat_template = TEMPLATES["chimed"]
    return name, AutoTokenizer.from_pretrained(str(path))


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("generation_prompt", [False, True])
def test_round_trip_token_for_token(saved, case, generation_prompt):
    name, reloaded = saved
    messages = CASES[case]
    expected = reloaded.apply_chat_template(
        messages, tokenize=True, return_dict=False, add_generation_prompt=generation_prompt
    )
    assert len(expected) > 5
    templates = ["tokenizer"] + ([name] if name != "chatml" else [])
    for template in templates:
        got = render_tokens(reloaded, messages, template, add_generation_prompt=generation_prompt)
        assert got.input_ids == list(expected)
        assert len(got.turn_ids) == len(expected)


@pytest.mark.parametrize("case", ["single", "multi"])
def test_mask_is_answers_and_eos(saved, case, labelled_runs):
    name, reloaded = saved
    messages = CASES[case]
    r = render_tokens(reloaded, messages, "tokenizer")
    labels = [i if m else -100 for i, m in zip(r.input_ids, r.assistant_mask, strict=True)]
    answers = [m["content"] + reloaded.eos_token for m in messages if m["role"] == "assistant"]
    assert labelled_runs(reloaded, r.input_ids, labels) == answers
    # the role header before an answer is prompt: the token before each run is not a target
    first = [t for t in range(1, len(labels)) if labels[t] != -100 and labels[t - 1] == -100]
    header = {"chimed": "[bot]:", "ziya": "<bot>:", "chatml": "assistant\n"}[name]
    for t in first:
        assert reloaded.decode(r.input_ids[:t]).endswith(header)


def test_turn_ends_cut_after_each_answer(tok):
    r = render_tokens(tok, MULTI, "chimed")
    assert len(r.turn_ends) == 2
    assert r.turn_ends[-1] == len(r.input_ids)
    assert r.input_ids[: r.turn_ends[0]] == render_tokens(tok, MULTI[:3], "chimed").input_ids


def test_prompt_is_the_training_prefix(tok):
    prompt = render_prompt(tok, MULTI, "chimed")
    assert tok.decode(prompt).endswith("[human]:三十八度五。\n[bot]:")
    assert prompt == tok.apply_chat_template(
        MULTI[:4], tokenize=True, return_dict=False, add_generation_prompt=True
    )
    full = render_tokens(tok, MULTI, "chimed")
    assert full.input_ids[: len(prompt)] == prompt
    assert not full.assistant_mask[len(prompt) - 1]
    assert all(full.assistant_mask[len(prompt) :])  # everything after the prompt is the answer
    assert render_prompt(tok, MULTI[:4], "chimed") == prompt  # no answer given: same prompt


def test_ziya_markers(tok):
    text = render_text(tok, SINGLE, "ziya", add_generation_prompt=False)
    assert text == "<human>:失眠是什么原因引起的？\n<bot>:常见原因是压力和焦虑。</s>"


def test_history_rewriting_template_is_refused(tok):
    tok.chat_template = "{{ messages | length }}" + TEMPLATES["chimed"]
    try:
        with pytest.raises(ConfigError, match="differently"):
            render_tokens(tok, MULTI, "tokenizer")
    finally:
        tok.chat_template = TEMPLATES["chimed"]


def test_unknown_template(tok):
    with pytest.raises(ConfigError, match="unknown chat template"):
        render_tokens(tok, SINGLE, "vicuna")
