"""Dialogue readers: COVID-Dialogue, CMtMedQA, ShareGPT JSONL and Toyhom-style Q&A CSV.

Each becomes `DialogueExample(history, reference)`: the reference is the LAST doctor
(assistant) turn and the history everything before it; turns after the last doctor turn are
dropped. Roles are normalised to "user" (patient), "assistant" (doctor) and "system".
Records that cannot yield a reference (no doctor turn, CMtMedQA's `instruct`-keyed safety
prompts) are skipped and counted in `ReadResult.skipped` rather than raising: they are valid
records of the source, just not dialogue-evaluation material.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .errors import EvalDataError
from .records import DialogueExample, ReadResult
from .sources import iter_csv_rows, iter_json_records, require

_COVID_PREFIXES = {"病人": "user", "患者": "user", "医生": "assistant"}
_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bot": "assistant",
    "system": "system",
}


def split_at_last_reply(
    turns: Sequence[tuple[str, str]],
) -> tuple[tuple[tuple[str, str], ...], str] | None:
    """(history, reference) with reference = last assistant turn; None if there is none."""
    for i in range(len(turns) - 1, -1, -1):
        if turns[i][0] == "assistant":
            return tuple(turns[:i]), turns[i][1]
    return None


def _add(result: ReadResult[DialogueExample], turns: list[tuple[str, str]], line: int) -> None:
    split = split_at_last_reply(turns)
    if split is None or not split[1].strip():
        result.skipped["no_doctor_turn"] += 1
        return
    history, reference = split
    if not any(role == "user" for role, _ in history):
        result.skipped["no_patient_turn"] += 1
        return
    result.examples.append(DialogueExample(history, reference.strip(), line))


def read_covid_dialogue(path: str | Path) -> ReadResult[DialogueExample]:
    """COVID-Dialogue (zh): a JSON array of dialogues, each a list of `病人：`/`医生：` strings."""
    path = Path(path)
    result: ReadResult[DialogueExample] = ReadResult([], path, "covid_dialogue", "dialogue")
    for line, rec in iter_json_records(path):
        if not isinstance(rec, list):
            raise EvalDataError(path, line, None, "expected a list of utterances")
        turns = []
        for k, utt in enumerate(rec):
            if not isinstance(utt, str):
                raise EvalDataError(path, line, f"[{k}]", "utterance is not a string")
            role = None
            for prefix, name in _COVID_PREFIXES.items():
                for colon in ("：", ":"):
                    if utt.startswith(prefix + colon):
                        role, utt = name, utt[len(prefix) + 1 :]
                        break
                if role:
                    break
            if role is None:
                raise EvalDataError(
                    path,
                    line,
                    f"[{k}]",
                    f"utterance does not start with 病人：/医生：: {utt[:20]!r}",
                )
            turns.append((role, utt.strip()))
        _add(result, turns, line)
    return result


def read_cmtmedqa(path: str | Path) -> ReadResult[DialogueExample]:
    """CMtMedQA (Zhongjing): `instruction` (last patient turn), `output` (last doctor turn),
    `history` [[patient, doctor], ...]. `instruct`-keyed safety prompts are skipped, counted."""
    path = Path(path)
    result: ReadResult[DialogueExample] = ReadResult([], path, "cmtmedqa", "dialogue")
    for line, rec in iter_json_records(path):
        if isinstance(rec, dict) and "instruct" in rec and "instruction" not in rec:
            result.skipped["safety_prompt"] += 1
            continue
        instruction = require(rec, "instruction", str, path, line)
        output = require(rec, "output", str, path, line)
        extra = rec.get("input") or ""
        if not isinstance(extra, str):
            raise EvalDataError(path, line, "input", "expected str")
        history = rec.get("history") or []
        if not isinstance(history, list):
            raise EvalDataError(path, line, "history", "expected a list of [patient, doctor] pairs")
        turns: list[tuple[str, str]] = []
        for k, pair in enumerate(history):
            if not (
                isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)
            ):
                raise EvalDataError(path, line, f"history[{k}]", "expected [patient, doctor]")
            turns += [("user", pair[0].strip()), ("assistant", pair[1].strip())]
        query = instruction.strip() + (("\n" + extra.strip()) if extra.strip() else "")
        turns += [("user", query), ("assistant", output.strip())]
        _add(result, turns, line)
    return result


def read_sharegpt(path: str | Path) -> ReadResult[DialogueExample]:
    """ShareGPT: `{"conversations": [{"from": "human"|"gpt"|"system", "value": str}, ...]}`."""
    path = Path(path)
    result: ReadResult[DialogueExample] = ReadResult([], path, "sharegpt", "dialogue")
    for line, rec in iter_json_records(path):
        convs = require(rec, "conversations", list, path, line)
        turns = []
        for k, turn in enumerate(convs):
            pre = f"conversations[{k}]."
            who = require(turn, "from", str, path, line, pre)
            value = require(turn, "value", str, path, line, pre)
            role = _SHAREGPT_ROLES.get(who.strip().lower())
            if role is None:
                raise EvalDataError(path, line, pre + "from", f"unknown speaker {who!r}")
            turns.append((role, value.strip()))
        _add(result, turns, line)
    return result


def read_qa_csv(path: str | Path) -> ReadResult[DialogueExample]:
    """Single-turn consultation CSV (Toyhom): `department,title,ask,answer`; the patient turn
    is the title plus the question body (when the body does not already contain the title)."""
    path = Path(path)
    result: ReadResult[DialogueExample] = ReadResult([], path, "qa_csv", "dialogue")
    for line, row in iter_csv_rows(path):
        if "answer" not in row or "ask" not in row:
            raise EvalDataError(path, line, "ask/answer", "missing column")
        title, ask = (row.get("title") or "").strip(), row["ask"].strip()
        query = ask if (not title or title in ask) else (f"{title}\n{ask}" if ask else title)
        _add(result, [("user", query), ("assistant", row["answer"].strip())], line)
    return result
