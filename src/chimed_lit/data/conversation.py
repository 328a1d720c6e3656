"""Chat records of every supported shape, converted to one normal form.

The normal form is `[{"role": "system"|"user"|"assistant", "content": str}, ...]`: an optional
system message first, then user and assistant turns alternating, starting with the user and
ending with the assistant. Everything downstream (rendering, masking, inference prompts) reads
only this form, so a new data shape needs a converter here and nothing else.

Formats (`data.format`, or `auto` to tell them apart by a record's keys):
- `alpaca`: `instruction`, `input` (optional, appended to the instruction on a new line when
  non-empty), `output`; optional `history` ([user, assistant] pairs before it) and `system`.
- `sharegpt`: `conversations` of `{"from", "value"}`; `from` is human/user, gpt/assistant or system.
- `messages`: OpenAI-style `messages` of `{"role", "content"}`.
- `dialogue`: `utterances` prefixed `病人：` / `医生：` (COVID-Dialogue; the reader wraps a bare
  JSON list as `{"utterances": [...]}`); consecutive utterances of one speaker are merged.
- `history`: CMtMedQA, i.e. alpaca with `history`, plus its safety records that use `instruct`
  instead of `instruction`; values are stripped (the source has leading spaces).
- `qa_csv`: one question/answer row (Toyhom: `department,title,ask,answer`); the question is
  `ask`, or `title` when `ask` is empty; the column names are configurable (`QAColumns`).

A trailing user turn carries no target, so it is dropped and counted (`Converted.dropped_turns`)
rather than rejected; COVID-Dialogue, for one, may end on the patient. Every other problem
raises `FieldError` naming the exact field, e.g. `conversations[2].value`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chimed_lit.data.base import FieldError

ROLES = ("system", "user", "assistant")
FORMATS = ("alpaca", "sharegpt", "messages", "dialogue", "history", "qa_csv")
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
}
SPEAKERS = {"病人": "user", "医生": "assistant"}

Message = dict[str, str]


@dataclass(frozen=True)
class QAColumns:
    """Column names of a question/answer table (`qa_csv`); `title` is the fallback question."""

    question: str = "ask"
    answer: str = "answer"
    title: str | None = "title"


@dataclass(frozen=True)
class Converted:
    """A record in normal form, the format it was read as, and how many trailing user turns
    were dropped because nothing answered them."""

    messages: list[Message]
    format: str
    dropped_turns: int = 0


@dataclass(frozen=True)
class _Turn:
    role: str
    content: str
    role_field: str  # where the role came from, for error messages
    content_field: str  # where the text came from


def detect_format(data: dict[str, Any], qa: QAColumns = QAColumns()) -> str:
    """The format of one record from its keys (records of one file may differ, as in CMtMedQA)."""
    if "messages" in data:
        return "messages"
    if "conversations" in data:
        return "sharegpt"
    if "utterances" in data:
        return "dialogue"
    if "instruct" in data or ("instruction" in data and "history" in data):
        return "history"
    if "instruction" in data:
        return "alpaca"
    if qa.answer in data and (qa.question in data or (qa.title and qa.title in data)):
        return "qa_csv"
    raise FieldError(
        "format",
        f"cannot tell the chat format from the keys {sorted(data)[:8]}; "
        f"set data.format to one of {', '.join(FORMATS)}",
    )


def to_messages(data: dict[str, Any], fmt: str = "auto", qa: QAColumns = QAColumns()) -> Converted:
    """Convert one raw record to the normal form and validate it (raises `FieldError`)."""
    fmt = detect_format(data, qa) if fmt == "auto" else fmt
    if fmt not in _CONVERTERS:
        raise ValueError(f"unknown chat format {fmt!r}; choose auto or one of {', '.join(FORMATS)}")
    turns, container = _CONVERTERS[fmt](data, qa)
    turns, dropped = _validate(turns, container)
    return Converted([{"role": t.role, "content": t.content} for t in turns], fmt, dropped)


# ----- field access ---------------------------------------------------------------------------
def _get(data: dict[str, Any], key: str, field: str | None = None) -> Any:
    if key not in data:
        raise FieldError(field or key, f"missing (record has {sorted(data)[:8]})")
    return data[key]


def _text(value: Any, field: str, strip: bool = False) -> str:
    if not isinstance(value, str):
        raise FieldError(field, f"expected text, got {type(value).__name__}")
    return value.strip() if strip else value


def _list(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise FieldError(field, f"expected a list, got {type(value).__name__}")
    return value


# ----- converters: (turns, the field that holds the conversation) -----------------------------
def _alpaca(
    data: dict[str, Any],
    qa: QAColumns,
    strip: bool = False,
    instruction_keys: tuple[str, ...] = ("instruction",),
) -> tuple[list[_Turn], str]:
    key = next((k for k in instruction_keys if k in data), instruction_keys[0])
    turns: list[_Turn] = []
    if data.get("system") not in (None, ""):
        turns.append(_Turn("system", _text(data["system"], "system", strip), "system", "system"))
    history = data.get("history") or []
    for i, pair in enumerate(_list(history, "history")):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise FieldError(f"history[{i}]", "expected a [user, assistant] pair")
        for j, role in enumerate(("user", "assistant")):
            f = f"history[{i}][{j}]"
            turns.append(_Turn(role, _text(pair[j], f, strip), f"history[{i}]", f))
    question = _text(_get(data, key), key, strip)
    extra = data.get("input")
    if extra is not None and _text(extra, "input").strip():
        question = f"{question}\n{_text(extra, 'input', strip)}"
    turns.append(_Turn("user", question, key, key))
    turns.append(
        _Turn("assistant", _text(_get(data, "output"), "output", strip), "output", "output")
    )
    return turns, key


def _history(data: dict[str, Any], qa: QAColumns) -> tuple[list[_Turn], str]:
    return _alpaca(data, qa, strip=True, instruction_keys=("instruction", "instruct"))


def _sharegpt(data: dict[str, Any], qa: QAColumns) -> tuple[list[_Turn], str]:
    turns: list[_Turn] = []
    if data.get("system") not in (None, ""):
        turns.append(_Turn("system", _text(data["system"], "system"), "system", "system"))
    for i, item in enumerate(_list(_get(data, "conversations"), "conversations")):
        at = f"conversations[{i}]"
        if not isinstance(item, dict):
            raise FieldError(
                at, f"expected an object with 'from' and 'value', got {type(item).__name__}"
            )
        who = _text(_get(item, "from", f"{at}.from"), f"{at}.from")
        if who not in SHAREGPT_ROLES:
            raise FieldError(
                f"{at}.from",
                f"unknown speaker {who!r}; expected one of {', '.join(SHAREGPT_ROLES)}",
            )
        value = _text(_get(item, "value", f"{at}.value"), f"{at}.value")
        turns.append(_Turn(SHAREGPT_ROLES[who], value, f"{at}.from", f"{at}.value"))
    return turns, "conversations"


def _messages(data: dict[str, Any], qa: QAColumns) -> tuple[list[_Turn], str]:
    turns: list[_Turn] = []
    for i, item in enumerate(_list(_get(data, "messages"), "messages")):
        at = f"messages[{i}]"
        if not isinstance(item, dict):
            raise FieldError(
                at, f"expected an object with 'role' and 'content', got {type(item).__name__}"
            )
        role = _text(_get(item, "role", f"{at}.role"), f"{at}.role")
        if role not in ROLES:
            raise FieldError(
                f"{at}.role", f"unknown role {role!r}; expected one of {', '.join(ROLES)}"
            )
        content = _text(_get(item, "content", f"{at}.content"), f"{at}.content")
        turns.append(_Turn(role, content, f"{at}.role", f"{at}.content"))
    return turns, "messages"


def _dialogue(data: dict[str, Any], qa: QAColumns) -> tuple[list[_Turn], str]:
    turns: list[_Turn] = []
    for i, utt in enumerate(_list(_get(data, "utterances"), "utterances")):
        at = f"utterances[{i}]"
        text = _text(utt, at).lstrip()
        speaker, sep, rest = text[:2], text[2:3], text[3:]
        if speaker not in SPEAKERS or sep not in ("：", ":"):
            raise FieldError(at, f"expected the prefix 病人： or 医生：, got {text[:8]!r}")
        role, rest = SPEAKERS[speaker], rest.strip()
        if turns and turns[-1].role == role:  # one speaker twice in a row: one turn
            prev = turns[-1]
            merged = f"{prev.content}\n{rest}" if prev.content and rest else prev.content + rest
            turns[-1] = _Turn(role, merged, prev.role_field, prev.content_field)
        else:
            turns.append(_Turn(role, rest, at, at))
    return turns, "utterances"


def _qa_csv(data: dict[str, Any], qa: QAColumns) -> tuple[list[_Turn], str]:
    if qa.question not in data and not (qa.title and qa.title in data):
        raise FieldError(
            qa.question,
            f"missing column (record has {sorted(data)[:8]}); set the question column name",
        )
    ask = _text(data.get(qa.question) or "", qa.question, strip=True)
    title = _text(data.get(qa.title) or "", qa.title, strip=True) if qa.title else ""
    question = ask or title
    answer = _text(_get(data, qa.answer), qa.answer, strip=True)
    return [
        _Turn("user", question, qa.question, qa.question),
        _Turn("assistant", answer, qa.answer, qa.answer),
    ], qa.question


_CONVERTERS = {
    "alpaca": _alpaca,
    "sharegpt": _sharegpt,
    "messages": _messages,
    "dialogue": _dialogue,
    "history": _history,
    "qa_csv": _qa_csv,
}


# ----- the rules every conversation obeys -----------------------------------------------------
def _validate(turns: list[_Turn], container: str) -> tuple[list[_Turn], int]:
    """Non-empty text; a system message only first; user first, then strict alternation;
    trailing user turns dropped (and counted); at least one assistant turn left."""
    for t in turns:
        if not t.content.strip():
            raise FieldError(t.content_field, f"empty {t.role} content")
    prev = None
    for i, t in enumerate(turns):
        if t.role == "system":
            if i != 0:
                raise FieldError(t.role_field, "a system message is allowed only as the first turn")
        elif prev in (None, "system") and t.role != "user":
            raise FieldError(
                t.role_field, f"the conversation must start with a user turn, got {t.role}"
            )
        elif t.role == prev:
            raise FieldError(
                t.role_field,
                f"two {t.role} turns in a row; user and assistant turns must alternate",
            )
        prev = t.role
    dropped = 0
    while turns and turns[-1].role == "user":
        turns, dropped = turns[:-1], dropped + 1
    if not any(t.role == "assistant" for t in turns):
        raise FieldError(container, "no assistant turn (nothing to learn from)")
    return turns, dropped


def prompt_messages(record: dict[str, Any]) -> list[dict[str, str]]:
    """The conversation before the reply to generate: `{"prompt": str}`, `messages`,
    `conversations`, or any SFT format (a final assistant turn is dropped)."""
    prompt = record.get("prompt")
    if isinstance(prompt, str):
        if not prompt.strip():
            raise FieldError("prompt", "empty text")
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, list):
        record = {"messages": prompt}
    msgs = record.get("messages")
    if (
        isinstance(msgs, list)
        and msgs
        and isinstance(msgs[-1], dict)
        and msgs[-1].get("role") == "user"
    ):
        for i, m in enumerate(msgs):
            if (
                not isinstance(m, dict)
                or not isinstance(m.get("content"), str)
                or not m["content"].strip()
            ):
                raise FieldError(f"messages[{i}].content", "missing or empty")
        return [dict(role=m["role"], content=m["content"]) for m in msgs]
    messages = to_messages(record).messages
    while messages and messages[-1]["role"] == "assistant":
        messages = messages[:-1]
    if not messages:
        raise FieldError("messages", "no user turn to answer")
    return messages
