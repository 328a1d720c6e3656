"""The prompt an RL policy is trained on is the prompt `chimed-lit eval task=mcq` (generate mode)
and `task=ner` ask: captured from eval's own runners (their `generate` replaced by a recorder)
and compared, token for token, with the DataModule's batches, for each real shape."""

from __future__ import annotations

import pytest

from chimed_lit.data.prompts import PromptDataModule
from chimed_lit.eval import runners_mcq, runners_ner
from chimed_lit.eval.api import make_render
from chimed_lit.eval.lm import encode
from chimed_lit.eval.tasks import run_eval
from tests.conftest import shared

FILES = [
    ("mcq", "mcq/cmexam_val.csv"),
    ("mcq", "mcq/cmmlu_medical_test.csv"),
    ("mcq", "mcq/cnmleqa_3k_2017.json"),
    ("ner", "ner/cmeee_v2_dev.json"),
    ("ner", "ner/ccks2019_yidu_s4k_train.jsonl"),
]


def _eval_prompts(monkeypatch, task: str, path, tok, template: str) -> list[str]:
    seen: list[str] = []

    def record(model, tokenizer, prompts, **kw):
        seen.extend(prompts)
        return [""] * len(prompts)

    monkeypatch.setattr(runners_mcq if task == "mcq" else runners_ner, "generate", record)
    extra = {"modes": ("generate",)} if task == "mcq" else {}
    run_eval(task, None, tok, files=[path], render=make_render(template, tok), **extra)
    return seen


@pytest.mark.parametrize("template", ["chimed", "ziya"])
@pytest.mark.parametrize("task, rel", FILES, ids=[r for _, r in FILES])
def test_the_policy_is_asked_what_eval_asks(monkeypatch, demo_tok, tmp_path, task, rel, template):
    path = shared(rel)
    asked = _eval_prompts(monkeypatch, task, path, demo_tok, template)
    dm = PromptDataModule(
        tokenizer=demo_tok,
        train_files=[str(path)],
        val_fraction=0,
        template=template,
        max_length=100_000,
        cache_dir=str(tmp_path),
        batch_size=len(asked),
    )
    dm.setup("fit")
    batch = dm.collate([dm.train_dataset[i] for i in range(len(dm.train_dataset))])
    assert len(batch["prompt_ids"]) == len(asked) > 0
    for ids, text, record, prompt in zip(
        batch["prompt_ids"], batch["prompt_text"], batch["records"], asked, strict=True
    ):
        assert ids == encode(demo_tok, prompt)
        assert record["task"] == task and record["question"] == text
        assert text in prompt
