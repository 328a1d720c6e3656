"""Prompt text for every task, as chat messages.

A prompt is a list of chat messages ({"role", "content"}); a `Render` (`messages -> str`, made
by `eval.api.make_render` from `chimed_lit.chat.render`, the renderer training uses) turns it
into model input ending with the generation prompt, e.g. `[human]:{q}\\n[bot]:`. Few-shot
exemplars are earlier turns of the same conversation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from chimed_lit.chat.render import Message

from .records import DialogueExample, MCQExample, NERExample

# --- NER -------------------------------------------------------------------------------

CMEEE_TYPE_NAMES = {
    "dis": "疾病",
    "sym": "临床表现",
    "dru": "药物",
    "equ": "医疗设备",
    "pro": "医疗程序",
    "bod": "身体部位",
    "ite": "医学检验项目",
    "mic": "微生物类",
    "dep": "科室",
}


def ner_question(text: str, display_types: Sequence[str]) -> str:
    """Asks for one `实体：类型` per line, or 无 — the format `parse_entity_lines` reads."""
    return (
        f"请找出下面文本中的医学实体。实体类型只能是：{'、'.join(display_types)}。\n"
        "每行输出一个实体，格式为“实体：类型”；没有实体时输出“无”。\n"
        f"文本：{text}"
    )


def ner_answer(example: NERExample, code_to_name: Mapping[str, str]) -> str:
    pairs = dict.fromkeys((e.surface, code_to_name.get(e.type, e.type)) for e in example.entities)
    return "\n".join(f"{s}：{t}" for s, t in pairs) or "无"


def ner_type_maps(
    examples: Sequence[NERExample],
    types: Sequence[str] | None = None,
    type_names: Mapping[str, str] | None = None,
) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """The types an NER prompt offers: display names (sorted by code; `types` defaults to every
    type in `examples`), code -> display name (CMeEE names built in, `type_names` over them),
    and display name or code -> code (what answers are read with). Eval and RL prompts share it."""
    codes = (
        list(types)
        if types is not None
        else sorted({e.type for ex in examples for e in ex.entities})
    )
    names = {**CMEEE_TYPE_NAMES, **(type_names or {})}
    code_to_name = {c: names.get(c, c) for c in codes}
    reverse = {**{c: c for c in codes}, **{n: c for c, n in code_to_name.items()}}
    return [code_to_name[c] for c in codes], code_to_name, reverse


def ner_messages(
    example: NERExample,
    display_types: Sequence[str],
    code_to_name: Mapping[str, str],
    shots: Sequence[NERExample] = (),
) -> list[Message]:
    msgs: list[Message] = []
    for shot in shots:
        msgs.append({"role": "user", "content": ner_question(shot.text, display_types)})
        msgs.append({"role": "assistant", "content": ner_answer(shot, code_to_name)})
    msgs.append({"role": "user", "content": ner_question(example.text, display_types)})
    return msgs


# --- MCQ -------------------------------------------------------------------------------


def mcq_question(example: MCQExample) -> str:
    head = "以下是医学考试的选择题"
    head += "（可能有多个正确答案）" if len(example.answers) > 1 else ""
    head += "，请直接给出正确答案的选项字母。\n"
    opts = "\n".join(f"{k}. {v}" for k, v in example.options.items())
    return f"{head}{example.question}\n{opts}\n答案："


def mcq_messages(example: MCQExample, shots: Sequence[MCQExample] = ()) -> list[Message]:
    msgs: list[Message] = []
    for shot in shots:
        msgs.append({"role": "user", "content": mcq_question(shot)})
        msgs.append({"role": "assistant", "content": "".join(sorted(shot.answers))})
    msgs.append({"role": "user", "content": mcq_question(example)})
    return msgs


# --- Dialogue --------------------------------------------------------------------------


def dialogue_messages(example: DialogueExample, max_turns: int | None = None) -> list[Message]:
    """The history as chat turns; `max_turns` keeps only the last N (starting at a user turn)."""
    turns = list(example.history)
    if max_turns is not None and len(turns) > max_turns:
        turns = turns[-max_turns:]
        while turns and turns[0][0] != "user":
            turns = turns[1:]
    return [{"role": role, "content": text} for role, text in turns]


# --- Scales ----------------------------------------------------------------------------

SCALE_LABELS = "ABCDEFGHIJ"


def scale_question(statement: str, options: Sequence[str]) -> str:
    lines = "\n".join(f"{SCALE_LABELS[i]}. {o}" for i, o in enumerate(options))
    return (
        "请阅读下面的陈述，并根据你的真实看法选择一个选项。\n"
        f"陈述：{statement}\n选项：\n{lines}\n请只回答选项字母。"
    )
