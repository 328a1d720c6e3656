"""Multiple-choice readers: C-Eval/CMMLU CSV, CMExam CSV, CNMLEQA JSON and MedQA JSONL.

All become `MCQExample(question, options, answers, subject)`. Answers are a set of letters so
CMExam's multi-answer questions are scored by exact set match; every answer letter must name
an option, or the record is rejected with its row and field.
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import EvalDataError
from .records import MCQExample, ReadResult
from .sources import iter_csv_rows, iter_json_records, require

_LETTERS = "ABCDEFGHIJ"
# CMExam stores its options in one cell separated by a LITERAL backslash-n (two characters).
_CMEXAM_SEP = re.compile(r"\\n|\r?\n")
_OPTION_HEAD = re.compile(r"^\s*([A-J])(?:\s*[\.．、:：)）]\s*|\s+|(?=\S))(.*)$", re.S)


def _parse_answer(raw: str, options: dict[str, str], path: Path, line: int, field: str):
    letters = frozenset(c for c in raw.upper() if c.isalpha())
    if not letters:
        raise EvalDataError(path, line, field, f"no answer letter in {raw!r}")
    unknown = sorted(letters - options.keys())
    if unknown:
        raise EvalDataError(
            path, line, field, f"answer {raw!r} names no option ({', '.join(unknown)})"
        )
    return letters


def _column(row: dict[str, str], name: str) -> str | None:
    """Case-insensitive column lookup (C-Eval writes `question`, CMMLU `Question`)."""
    for key, value in row.items():
        if key is not None and key.strip().lower() == name.lower():
            return value
    return None


def read_ceval_cmmlu(path: str | Path, subject: str | None = None) -> ReadResult[MCQExample]:
    """`Question,A,B,C,D,Answer` (any case, extra columns ignored) with an optional `subject`
    column; without one, `subject` or else the file stem (CMMLU ships one file per subject)."""
    path = Path(path)
    result: ReadResult[MCQExample] = ReadResult([], path, "ceval", "mcq")
    for line, row in iter_csv_rows(path):
        question = _column(row, "question")
        if question is None or not question.strip():
            raise EvalDataError(path, line, "Question", "missing or empty")
        options = {}
        for letter in "ABCDEF":
            text = _column(row, letter)
            if text is not None and (letter in "ABCD" or text.strip()):
                options[letter] = text.strip()
        for letter in "ABCD":
            if not options.get(letter):
                raise EvalDataError(path, line, letter, "missing or empty option")
        answer = _column(row, "answer")
        if answer is None:
            raise EvalDataError(path, line, "Answer", "missing")
        answers = _parse_answer(answer, options, path, line, "Answer")
        subj = _column(row, "subject") or subject or path.stem
        result.examples.append(MCQExample(question.strip(), options, answers, subj, line))
    return result


def split_cmexam_options(cell: str) -> list[tuple[str, str]]:
    """Split CMExam's `A 原发病\\nB 出血部位...` cell into (letter, text) pairs."""
    pairs = []
    for part in _CMEXAM_SEP.split(cell):
        if not part.strip():
            continue
        match = _OPTION_HEAD.match(part)
        if match is None:
            raise ValueError(f"option {part!r} does not start with a letter")
        pairs.append((match.group(1), match.group(2).strip()))
    return pairs


def read_cmexam(path: str | Path) -> ReadResult[MCQExample]:
    """CMExam: `Question,Options,Answer[,Explanation,...]`; `Answer` may hold several letters."""
    path = Path(path)
    result: ReadResult[MCQExample] = ReadResult([], path, "cmexam", "mcq")
    for line, row in iter_csv_rows(path):
        question = _column(row, "question")
        if question is None or not question.strip():
            raise EvalDataError(path, line, "Question", "missing or empty")
        cell = _column(row, "options")
        if cell is None or not cell.strip():
            raise EvalDataError(path, line, "Options", "missing or empty")
        try:
            pairs = split_cmexam_options(cell)
        except ValueError as err:
            raise EvalDataError(path, line, "Options", str(err)) from err
        letters = [p[0] for p in pairs]
        if len(set(letters)) != len(letters) or len(pairs) < 2:
            raise EvalDataError(path, line, "Options", f"bad option letters {letters}")
        options = dict(pairs)
        answers = _parse_answer(_column(row, "answer") or "", options, path, line, "Answer")
        subject = _column(row, "subject") or _column(row, "medical discipline") or None
        result.examples.append(MCQExample(question.strip(), options, answers, subject, line))
    return result


def read_cnmleqa(path: str | Path) -> ReadResult[MCQExample]:
    """CNMLEQA: `opa`..`ope` and `answer` naming the key (`"opb"` -> B); `question_type`
    (知识问答 / 案例分析) is used as the subject."""
    path = Path(path)
    result: ReadResult[MCQExample] = ReadResult([], path, "cnmleqa", "mcq")
    for line, rec in iter_json_records(path):
        question = require(rec, "question", str, path, line)
        options = {}
        for letter in "abcdefgh":
            key = f"op{letter}"
            if key in rec:
                options[letter.upper()] = str(require(rec, key, (str, int, float), path, line))
        if len(options) < 2:
            raise EvalDataError(path, line, "opa", "fewer than two options")
        raw = require(rec, "answer", str, path, line)
        if not re.fullmatch(r"op[a-h]+", raw.strip()):
            raise EvalDataError(path, line, "answer", f"expected 'opa'..'ope', got {raw!r}")
        answers = _parse_answer(raw.strip()[2:], options, path, line, "answer")
        subject = rec.get("question_type") if isinstance(rec.get("question_type"), str) else None
        result.examples.append(MCQExample(question.strip(), options, answers, subject, line))
    return result


def read_medqa(path: str | Path) -> ReadResult[MCQExample]:
    """MedQA (MCMLE) JSONL: `question`, `options` {letter: text}, `answer_idx`; `meta_info`
    (e.g. step1) becomes the subject when present."""
    path = Path(path)
    result: ReadResult[MCQExample] = ReadResult([], path, "medqa", "mcq")
    for line, rec in iter_json_records(path):
        question = require(rec, "question", str, path, line)
        raw_opts = require(rec, "options", dict, path, line)
        options = {}
        for key in sorted(raw_opts):
            if not (isinstance(key, str) and len(key) == 1 and key.upper() in _LETTERS):
                raise EvalDataError(path, line, f"options.{key}", "option key is not a letter")
            options[key.upper()] = str(raw_opts[key]).strip()
        raw = require(rec, "answer_idx", str, path, line)
        answers = _parse_answer(raw, options, path, line, "answer_idx")
        subject = rec.get("meta_info") if isinstance(rec.get("meta_info"), str) else None
        result.examples.append(MCQExample(question.strip(), options, answers, subject, line))
    return result
