"""Prompt records as the RL data module builds them, by hand and from the shared samples."""

from __future__ import annotations

from typing import Any

from chimed_lit.eval.prompts import CMEEE_TYPE_NAMES, mcq_question, ner_question
from chimed_lit.eval.records import MCQExample, NERExample

# CMExam's first validation question (its options as CMExam ships them)
OPTIONS = {"A": "原发病", "B": "出血部位", "C": "出血量", "D": "在胃内停留时间", "E": "以上均非"}
QUESTION = "上消化道出血可单纯表现为呕血或黑便，也可两者兼有，这取决于"


def mcq(answers: str = "C", options: dict[str, str] | None = None) -> dict[str, Any]:
    options = OPTIONS if options is None else options
    example = MCQExample(QUESTION, options, frozenset(answers))
    return {
        "task": "mcq",
        "question": mcq_question(example),
        "gold": {"answers": sorted(answers), "options": dict(options)},
    }


def ner(entities: list[tuple[str, str]], codes: tuple[str, ...] = ("sym", "dru", "bod")) -> dict:
    code_to_name = {c: CMEEE_TYPE_NAMES.get(c, c) for c in codes}
    names = {**{c: c for c in codes}, **{n: c for c, n in code_to_name.items()}}
    return {
        "task": "ner",
        "question": ner_question(
            "患者头痛，服用阿司匹林后缓解，肺部无异常。", list(code_to_name.values())
        ),
        "gold": {"entities": [list(e) for e in entities], "type_names": names},
    }


def free(reference: str | None = None) -> dict[str, Any]:
    return {
        "task": "free",
        "question": "高血压患者日常饮食需要注意什么？",
        "gold": {"reference": reference} if reference else None,
    }


def mcq_from(example: MCQExample) -> dict[str, Any]:
    """What `data.task_files.mcq_record` carries for an eval example, as a reward sees it."""
    return {
        "task": "mcq",
        "question": mcq_question(example),
        "gold": {"answers": sorted(example.answers), "options": dict(example.options)},
    }


def ner_from(examples: list[NERExample]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Records for one file's examples (the types shown: the file's, as eval shows them), and
    code -> display name (what `eval.prompts.ner_answer` writes)."""
    codes = sorted({e.type for ex in examples for e in ex.entities})
    code_to_name = {c: CMEEE_TYPE_NAMES.get(c, c) for c in codes}
    names = {**{c: c for c in codes}, **{n: c for c, n in code_to_name.items()}}
    records = [
        {
            "task": "ner",
            "question": ner_question(ex.text, list(code_to_name.values())),
            "gold": {
                "entities": [list(p) for p in sorted({(e.surface, e.type) for e in ex.entities})],
                "type_names": names,
            },
        }
        for ex in examples
    ]
    return records, code_to_name
