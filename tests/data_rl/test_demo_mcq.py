"""The verifiable demo task (issue 21, point 6): four-option MCQs on the shipped demo corpus's
facts, regenerated deterministically by scripts/make_demo_mcq.py, with a held-out file that asks
nothing the RL prompts ask and an SFT file that teaches eval's answer format on other facts."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from chimed_lit.data.conversation import to_messages
from chimed_lit.data.prompts import MCQDemoPromptDataModule
from chimed_lit.demo import DEMO_DIR, demo_path
from chimed_lit.eval.formats import detect_format
from chimed_lit.eval.prompts import mcq_question
from chimed_lit.eval.records import MCQExample

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location(
        "make_demo_mcq", ROOT / "scripts" / "make_demo_mcq.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def _read(name: str) -> list[dict]:
    return [json.loads(x) for x in Path(demo_path(name)).read_text("utf-8").splitlines()]


@pytest.fixture(scope="module")
def files() -> dict[str, list[dict]]:
    return {s: _read(f"mcq_{s}.jsonl") for s in ("train", "val", "sft")}


def test_the_committed_files_are_the_generators_output(gen):
    built = gen.build()
    assert gen.build() == built  # seeded: the same every time
    for split, name in gen.FILES.items():
        assert (DEMO_DIR / name).read_text("utf-8") == gen.render(built[split]), (
            f"{name} is stale: run python scripts/make_demo_mcq.py"
        )


def test_sizes_and_shape(files):
    assert (len(files["train"]), len(files["val"]), len(files["sft"])) == (384, 60, 96)
    for split in ("train", "val"):
        assert detect_format(demo_path(f"mcq_{split}.jsonl")) == "medqa"  # eval reads them
        for r in files[split]:
            assert list(r["options"]) == list("ABCD") and r["answer_idx"] in "ABCD"
            assert len(set(r["options"].values())) == 4  # four distinct options


@pytest.mark.parametrize("split", ["train", "val", "sft"])
def test_every_letter_is_right_equally_often(files, split):
    if split == "sft":
        letters = [r["conversations"][1]["value"] for r in files[split]]
    else:
        letters = [r["answer_idx"] for r in files[split]]
    assert set(Counter(letters).values()) == {len(letters) // 4}


def test_held_out_asks_nothing_the_rl_prompts_ask(files):
    train_questions = {r["question"] for r in files["train"]}
    train_facts = {r["fact"] for r in files["train"]}
    train_options = {
        (r["fact"], json.dumps(r["options"], ensure_ascii=False)) for r in files["train"]
    }
    notes = Counter(r["held_out"] for r in files["val"])
    assert notes == {"phrasing": 44, "fact": 16}
    for r in files["val"]:
        assert r["question"] not in train_questions
        assert (r["fact"] in train_facts) == (r["held_out"] == "phrasing")
        assert (r["fact"], json.dumps(r["options"], ensure_ascii=False)) not in train_options


def test_held_out_phrasings_are_never_trained_on(gen, files):
    """No held-out question is any training phrasing filled with any condition."""
    from demo_knowledge import CONDITIONS

    trainable = {t.format(**c) for k in gen.KINDS.values() for t in k.train for c in CONDITIONS}
    assert {r["question"] for r in files["train"]} <= trainable
    assert not {r["question"] for r in files["val"]} & trainable


def _sft_example(content: str) -> MCQExample:
    """Read eval's rendering back: header, stem, `X. option` lines, 答案：."""
    header, stem, *opts, tail = content.split("\n")
    assert tail == "答案：" and header.startswith("以下是医学考试的选择题")
    options = dict(line.split(". ", 1) for line in opts)
    return MCQExample(stem, options, frozenset("A"))


def test_sft_examples_are_evals_rendering_answered_by_the_letter(files):
    rl = [r for split in ("train", "val") for r in files[split]]
    mcq_texts = {
        mcq_question(MCQExample(r["question"], r["options"], frozenset(r["answer_idx"])))
        for r in rl
    }
    for r in files["sft"]:
        user, reply = to_messages(r).messages  # as the SFT stage reads them
        assert (user["role"], reply["role"]) == ("user", "assistant")
        ex = _sft_example(user["content"])
        assert mcq_question(ex) == user["content"]  # exactly eval's question
        assert reply["content"] in ex.options and len(reply["content"]) == 1
        assert user["content"] not in mcq_texts
        # a stem that names only a department ("以下属于耳鼻喉科常见疾病的是？") is shared by
        # that department's conditions: then the right answer is another condition
        right = ex.options[reply["content"]]
        for other in rl:
            if other["question"] == ex.question:
                assert other["options"][other["answer_idx"]] != right


def test_sft_facts_are_not_rl_or_held_out_facts(gen):
    import random

    pools = gen.split_facts(random.Random(gen.SEED))
    key = lambda facts: {(r, c["name"]) for r, c in facts}  # noqa: E731
    assert not key(pools["sft"]) & (key(pools["rl"]) | key(pools["unseen"]))
    assert not key(pools["unseen"]) & key(pools["rl"])
    assert key(pools["again"]) <= key(pools["rl"])


# what the shipped pre-training corpus says of a condition, per relation (make_demo_corpus.facts)
SAYS = {
    "dept": r"{name}是(\S+?)的常见疾病",
    "sym": r"{name}是\S+?的常见疾病，主要表现为(.+?)。",
    "exam": r"诊断{name}通常需要(.+?)。",
    "cause": r"{name}的病因主要是(.+?)。",
}


def test_every_answer_is_what_the_shipped_corpus_says(files):
    corpus = "\n".join(
        json.loads(line)["text"]
        for name in ("pretrain.jsonl", "pretrain_val.jsonl")
        for line in Path(demo_path(name)).read_text("utf-8").splitlines()
    )
    for split in ("train", "val"):
        for r in files[split]:
            relation, name = r["fact"].split(":", 1)
            found = re.search(SAYS[relation].format(name=re.escape(name)), corpus)
            assert found, r["fact"]
            right = r["options"][r["answer_idx"]]
            if right == name:  # asked from the fact to the condition
                assert found.group(1) in r["question"]
            else:
                assert right == found.group(1)


def test_demo_prompts_fit_the_configured_length(demo_tok, tmp_path):
    cfg = OmegaConf.load(ROOT / "configs" / "data" / "mcq_demo.yaml")
    assert cfg._target_ == "chimed_lit.data.prompts.MCQDemoPromptDataModule"
    dm = MCQDemoPromptDataModule(
        tokenizer=demo_tok, max_length=cfg.max_length, cache_dir=str(tmp_path)
    )
    dm.setup("fit")
    assert dm.train_files == [demo_path("mcq_train.jsonl")]
    assert dm.val_files == [demo_path("mcq_val.jsonl")]
    assert dm.stats["train_truncated"] == dm.stats["val_truncated"] == 0
    assert (len(dm.train_dataset), len(dm.val_dataset)) == (384, 60)
    batch = dm.collate([dm.val_dataset[i] for i in range(4)])
    for rec, raw in zip(batch["records"], _read("mcq_val.jsonl")[:4], strict=True):
        assert rec["gold"] == {"answers": [raw["answer_idx"]], "options": raw["options"]}


def test_the_new_demo_files_leave_the_demo_tokenizer_as_it_was(monkeypatch, tmp_path):
    """The demo tokenizer trains on every demo file's `text`/`messages`/`prompt` texts: the MCQ
    files hold none (MedQA shape; SFT as ShareGPT), so every other stage tokenizes as before."""
    import shutil

    from chimed_lit.models import demo_tokenizer as dt

    with_mcq = dt._demo_texts()
    for path in DEMO_DIR.glob("*.jsonl"):
        if not path.name.startswith("mcq_"):
            shutil.copy(path, tmp_path / path.name)
    monkeypatch.setattr(dt, "DEMO_DIR", tmp_path)
    assert dt._demo_texts() == with_mcq
