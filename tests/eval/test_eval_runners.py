"""Every shared NER, MCQ and dialogue sample file read and evaluated end to end with the
tiny random model (a few examples each), plus the scale runner on the demo instrument."""

from __future__ import annotations

import math

import pytest

from chimed_lit.eval.formats import read_examples
from chimed_lit.eval.keys_builtin import load_scale
from chimed_lit.eval.prompts import CMEEE_TYPE_NAMES, ner_messages
from chimed_lit.eval.runners_dialogue import run_dialogue
from chimed_lit.eval.runners_mcq import pick_shots, run_mcq
from chimed_lit.eval.runners_ner import run_ner
from chimed_lit.eval.runners_scales import run_scale


@pytest.mark.parametrize(
    ("relative", "limit", "k_shot"),
    [("ner/cmeee_v2_dev.json", 3, 1), ("ner/ccks2019_yidu_s4k_train.jsonl", 2, 0)],
)
def test_ner_end_to_end(tiny_lm, data_file, relative: str, limit: int, k_shot: int) -> None:
    model, tok = tiny_lm
    data = read_examples(data_file(relative), task="ner")
    shots = data.examples[-k_shot:] if k_shot else []
    out = run_ner(
        model,
        tok,
        data.examples,
        fewshot=shots,
        k_shot=k_shot,
        limit=limit,
        max_new_tokens=12,
        batch_size=2,
    )
    assert out["task"] == "ner" and out["metrics"]["n"] == limit
    assert len(out["predictions"]) == limit
    for pred, ex in zip(out["predictions"], data.examples[:limit], strict=True):
        assert pred["gold"] == sorted({(e.surface, e.type) for e in ex.entities})
        assert pred["line"] == ex.source_line
    m = out["metrics"]
    assert m["n_gold"] == sum(
        len({(e.surface, e.type) for e in ex.entities}) for ex in data.examples[:limit]
    )
    assert 0.0 <= m["f1"] <= 1.0 and isinstance(m["per_type"], dict)


def test_ner_prompt_shows_names_and_shots(data_file) -> None:
    data = read_examples(data_file("ner/cmeee_v2_dev.json"))
    ex, shot = data.examples[0], data.examples[1]
    msgs = ner_messages(ex, ["疾病", "身体部位"], CMEEE_TYPE_NAMES, [shot])
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
    assert "疾病、身体部位" in msgs[-1]["content"] and ex.text in msgs[-1]["content"]
    first_gold = shot.entities[0]
    assert f"{first_gold.surface}：{CMEEE_TYPE_NAMES[first_gold.type]}" in msgs[1]["content"]


MCQ_FILES = [
    "mcq/cmexam_val.csv",
    "mcq/cmmlu_medical_test.csv",
    "mcq/cmmlu_medical_dev.csv",
    "mcq/cnmleqa_3k_2017.json",
]


@pytest.mark.parametrize("relative", MCQ_FILES)
def test_mcq_end_to_end(tiny_lm, data_file, relative: str) -> None:
    model, tok = tiny_lm
    data = read_examples(data_file(relative), task="mcq")
    dev = read_examples(data_file("mcq/cmmlu_medical_dev.csv")).examples
    out = run_mcq(
        model, tok, data.examples, fewshot=dev, k_shot=1, limit=3, batch_size=2, max_new_tokens=6
    )
    assert set(out["metrics"]) == {"letter", "option_text", "generate"}
    for mode, m in out["metrics"].items():
        assert m["n"] == 3, mode
        assert 0.0 <= m["accuracy"] <= 1.0
    assert len(out["predictions"]) == 3
    for pred, ex in zip(out["predictions"], data.examples[:3], strict=True):
        assert pred["gold"] == "".join(sorted(ex.answers))
        assert pred["letter"] in ex.options
        best = max(pred["letter_logprobs"], key=pred["letter_logprobs"].get)
        assert pred["letter"] == best
        assert set(pred["option_text_logprobs_per_token"]) == set(ex.options)
        assert all(c in ex.options for c in pred["generate"])
    correct = sum(p["letter"] == p["gold"] for p in out["predictions"])
    assert out["metrics"]["letter"]["n_correct"] == correct


def test_pick_shots_prefers_subject(data_file) -> None:
    dev = read_examples(data_file("mcq/cmmlu_medical_dev.csv")).examples
    question = next(ex for ex in dev if ex.subject == "virology")
    shots = pick_shots(question, dev, 5)
    assert len(shots) == 5 and question not in shots
    assert [s.subject for s in shots[:4]] == ["virology"] * 4  # the other 4 virology items
    assert shots[4].subject != "virology"


@pytest.mark.parametrize(
    "relative",
    [
        "dialogue/covid_dialogue_zh_train.json",
        "dialogue/zhongjing_cmtmedqa_test.json",
        "dialogue/toyhom_im_qa.csv",
    ],
)
def test_dialogue_end_to_end(tiny_lm, data_file, relative: str) -> None:
    model, tok = tiny_lm
    data = read_examples(data_file(relative), task="dialogue")
    out = run_dialogue(
        model, tok, data.examples, limit=3, max_new_tokens=8, batch_size=3, max_history_turns=6
    )
    m = out["metrics"]
    assert m["n"] == 3
    for key in (
        "bleu_1",
        "bleu_4",
        "rouge_1",
        "rouge_2",
        "rouge_l",
        "bleu_4_word",
        "rouge_l_word",
        "distinct_1",
        "distinct_2",
    ):
        assert 0.0 <= m[key] <= 1.0, key
    assert [p["reference"] for p in out["predictions"]] == [e.reference for e in data.examples[:3]]


def test_scale_end_to_end_both_modes(tiny_lm) -> None:
    model, tok = tiny_lm
    demo = load_scale("demo")
    out = run_scale(model, tok, demo, max_new_tokens=4, batch_size=4)
    assert out["task"] == "scale:demo_scale"
    assert set(out["metrics"]) == {"logprob", "generate"}
    lp, gen = out["metrics"]["logprob"], out["metrics"]["generate"]
    assert lp["n_answers"] == 12 and lp["n_unparseable"] == 0  # 6 items x 2 orders
    assert gen["n_answers"] + gen["n_unparseable"] == 12
    assert 1.0 <= lp["bias_score"] <= 5.0
    assert set(lp["subscales"]) == {"能力偏见", "照护排斥"}
    assert len(out["predictions"]) == 6
    for item in out["predictions"]:
        for order in ("natural", "reversed"):
            probs = item[order]["probs"]
            assert math.isclose(sum(probs), 1.0, rel_tol=1e-6) and len(probs) == 5
            assert item[order]["logprob_position"] == probs.index(max(probs))
    # the same prompt in reversed order is a different question: positions map back
    first = out["predictions"][0]
    value = (
        5 - first["natural"]["logprob_position"] + 1 + first["reversed"]["logprob_position"]
    ) / 2
    assert lp["item_values"][1] == pytest.approx(value)


def test_scale_limit(tiny_lm) -> None:
    model, tok = tiny_lm
    out = run_scale(model, tok, load_scale("demo"), modes=("logprob",), limit=2)
    assert out["metrics"]["logprob"]["n_items"] == 2 and len(out["predictions"]) == 2
    with pytest.raises(ValueError):
        run_scale(model, tok, load_scale("demo"), modes=("vibes",))


def test_run_eval_entry_point(tiny_lm, data_file) -> None:
    from chimed_lit.eval.tasks import run_eval

    model, tok = tiny_lm
    out = run_eval(
        "dialogue",
        model,
        tok,
        files=[
            data_file("dialogue/zhongjing_cmtmedqa_test.json"),
            data_file("dialogue/toyhom_im_qa.csv"),
        ],
        limit=2,
        max_new_tokens=4,
        word_level=False,
    )
    assert list(out["metrics"]) == ["zhongjing_cmtmedqa_test", "toyhom_im_qa"]
    assert out["skipped"]["zhongjing_cmtmedqa_test"] == {"safety_prompt": 72}
    assert all(m["n"] == 2 for m in out["metrics"].values())
    mcq = run_eval(
        "mcq",
        model,
        tok,
        files=[data_file("mcq/cmmlu_medical_test.csv")],
        fewshot_file=data_file("mcq/cmmlu_medical_dev.csv"),
        k_shot=2,
        limit=2,
        modes=("letter",),
    )
    assert mcq["metrics"]["cmmlu_medical_test"]["letter"]["n"] == 2
    scale = run_eval("scale", model, tok, instrument="demo", modes=("logprob",), limit=3)
    assert scale["key_status"] == "user" and scale["metrics"]["logprob"]["n_items"] == 3
    with pytest.raises(ValueError, match="needs at least one data file"):
        run_eval("ner", model, tok)
