"""The prompt an RL policy is trained on is the prompt `chimed-lit eval task=mcq` (generate mode)
and `task=ner` ask: built as eval's runners build it (eval's reader, `mcq_messages` /
`ner_type_maps` + `ner_messages`, the eval renderer) and compared, token for token, with the
DataModule's batches, for each real shape."""

from __future__ import annotations

import pytest

from chimed_lit.data.prompts import PromptDataModule
from chimed_lit.eval.api import make_render
from chimed_lit.eval.formats import read_examples
from chimed_lit.eval.lm import encode
from chimed_lit.eval.prompts import mcq_messages, ner_messages, ner_type_maps
from tests.conftest import shared

FILES = [
    ("mcq", "mcq/cmexam_val.csv"),
    ("mcq", "mcq/cmmlu_medical_test.csv"),
    ("mcq", "mcq/cnmleqa_3k_2017.json"),
    ("ner", "ner/cmeee_v2_dev.json"),
    ("ner", "ner/ccks2019_yidu_s4k_train.jsonl"),
]


def _eval_prompts(task: str, path, tok, template: str) -> list[str]:
    """What `run_mcq` (zero-shot, generate mode) and `run_ner` send their model."""
    render = make_render(template, tok)
    examples = read_examples(path, fmt=None, task=task).examples
    if task == "mcq":
        return [render(mcq_messages(ex)) for ex in examples]
    display, code_to_name, _ = ner_type_maps(examples)
    return [render(ner_messages(ex, display, code_to_name)) for ex in examples]


@pytest.mark.parametrize("template", ["chimed", "ziya"])
@pytest.mark.parametrize("task, rel", FILES, ids=[r for _, r in FILES])
def test_the_policy_is_asked_what_eval_asks(demo_tok, tmp_path, task, rel, template):
    path = shared(rel)
    asked = _eval_prompts(task, path, demo_tok, template)
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
