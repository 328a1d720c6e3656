"""Batched model helpers on the tiny random LLaMA: padding must not change results."""

from __future__ import annotations

import pytest
import torch

from chimed_lit.eval.api import make_render
from chimed_lit.eval.lm import (
    choice_logprobs,
    continuation_logprobs,
    cut_at_stop,
    generate,
    split_continuation,
)
from chimed_lit.io.errors import ConfigError

PROMPTS = [
    "[human]:感冒了怎么办？\n[bot]:",
    "[human]:我最近头痛发热，需要吃什么药？请详细说明。\n[bot]:",
    "[human]:高血压\n[bot]:",
]


def test_left_padded_batch_generation_matches_one_by_one(tiny_lm) -> None:
    model, tok = tiny_lm
    batched = generate(model, tok, PROMPTS, max_new_tokens=12, batch_size=3, stops=())
    single = [generate(model, tok, [p], max_new_tokens=12, stops=())[0] for p in PROMPTS]
    assert batched == single
    assert any(batched)


def test_greedy_generation_matches_hf_generate(tiny_lm) -> None:
    """The evaluations' greedy replies come from the lean decoding loop; a model class that is
    not transformers-native goes through HF `generate`: both must give the same text."""
    import copy

    model, tok = tiny_lm
    lean = generate(model, tok, PROMPTS, max_new_tokens=12, batch_size=3, stops=())
    other = copy.deepcopy(model)
    other.__class__ = type("RemoteLM", (type(model),), {"__module__": "transformers_modules.x"})
    assert generate(other, tok, PROMPTS, max_new_tokens=12, batch_size=3, stops=()) == lean


def test_generation_is_the_inference_path(tiny_lm) -> None:
    """Eval's replies are `inference.generation.generate`'s for the prompts training renders:
    the rendered text encodes to `render_prompts`' ids, and the greedy replies agree."""
    from chimed_lit.inference.generation import Sampling, render_prompts
    from chimed_lit.inference.generation import generate as generate_ids

    model, tok = tiny_lm
    conversations = [
        [{"role": "user", "content": "感冒了怎么办？"}],
        [{"role": "user", "content": "高血压"}, {"role": "user", "content": "需要吃药吗？"}],
    ]
    render = make_render("chimed", tok)
    ours = generate(model, tok, [render(c) for c in conversations], max_new_tokens=12, stops=())
    ids = render_prompts(tok, conversations, "chimed")
    theirs = generate_ids(model, tok, ids, Sampling(max_new_tokens=12, do_sample=False))
    assert ours == [r["text"].strip() for r in theirs]
    assert any(ours)


def test_choice_fast_path_matches_full_scoring(tiny_lm) -> None:
    model, tok = tiny_lm
    letters = [["A", "B", "C", "D"]] * len(PROMPTS)
    fast = choice_logprobs(model, tok, PROMPTS, letters, batch_size=2)
    slow = continuation_logprobs(
        model, tok, [p for p in PROMPTS for _ in "ABCD"], list("ABCD") * len(PROMPTS), batch_size=5
    )
    flat = [s for row in fast for s in row]
    assert flat == pytest.approx([s for s, _ in slow], abs=1e-4)
    assert all(n == 1 for _, n in slow)
    # probabilities over the whole vocabulary: each letter's log-prob is negative
    assert all(s < 0 for s in flat)


def test_continuation_scores_independent_of_batch(tiny_lm) -> None:
    model, tok = tiny_lm
    conts = ["多喝水，注意休息。", "A", "服用降压药"]
    together = continuation_logprobs(model, tok, PROMPTS, conts, batch_size=3)
    alone = [
        continuation_logprobs(model, tok, [p], [c])[0] for p, c in zip(PROMPTS, conts, strict=True)
    ]
    assert [s for s, _ in together] == pytest.approx([s for s, _ in alone], abs=1e-4)
    assert [n for _, n in together] == [n for _, n in alone]
    # the sum is over the continuation's tokens, so it equals a manual forward
    ctx, cont = split_continuation(tok, PROMPTS[0], conts[0])
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0], -1)
    manual = sum(float(logp[len(ctx) - 1 + i, t]) for i, t in enumerate(cont))
    assert together[0][0] == pytest.approx(manual, abs=1e-4)


def test_long_prompt_is_truncated_from_the_left(tiny_lm) -> None:
    model, tok = tiny_lm
    long = "[human]:" + "头痛" * 400 + "\n[bot]:"
    out = generate(model, tok, [long], max_new_tokens=4, max_prompt_tokens=32, stops=())
    ref = generate(model, tok, [long[-400:]], max_new_tokens=4, max_prompt_tokens=32, stops=())
    assert out == ref  # only the last 32 tokens were seen in both cases


def test_stops_and_renders(tiny_lm) -> None:
    assert cut_at_stop("多喝水</s>[human]:再问", ("</s>", "[human]:")) == "多喝水"
    msgs = [
        {"role": "user", "content": "问1"},
        {"role": "assistant", "content": "答1"},
        {"role": "user", "content": "问2"},
    ]
    _, tok = tiny_lm
    chimed = make_render("chimed", tok)
    assert chimed(msgs) == "[human]:问1\n[bot]:答1</s>[human]:问2\n[bot]:"
    assert chimed(msgs[:1]) == "[human]:问1\n[bot]:"
    # two user turns in a row keep their own headers, as training renders them (the old eval
    # renderer merged them into `[human]:问1\n问2\n[bot]:`)
    assert chimed([msgs[0], msgs[2]]) == "[human]:问1\n[human]:问2\n[bot]:"
    assert make_render("ziya", tok)(msgs[:1]) == "<human>:问1\n<bot>:"
    with pytest.raises(ConfigError, match="eval.template=tokenizer"):
        make_render("tokenizer", tok)  # this tokenizer has no chat template
    with pytest.raises(ConfigError, match="eval.template='llama'"):
        make_render("llama", tok)
    tok.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    try:
        assert make_render("tokenizer", tok)(msgs[:1]) == "<user>问1<assistant>"
    finally:
        tok.chat_template = None
