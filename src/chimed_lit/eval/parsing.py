"""Robust parsing of free-text model answers into structured predictions.

Models answer in many shapes ("B", "答案：B", "(B) 同意", "我选择同意", "2"); each parser
tries the most explicit form first and returns None / an empty set when nothing fits, so the
caller can count unparseable answers instead of guessing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

_BULLET = re.compile(r"^\s*(?:[-*•·]|\d+[\.、．)）]|[（(]\d+[)）])\s*")
# what may follow a leading answer letter: "B", "B.", "B、", "(B)" but not "A错" or "A型"
_END = r"(?=$|[\s\.．、:：)）\],，。;；])"
_QUOTES = {"“": "”", '"': '"', "'": "'", "「": "」", "『": "』", "‘": "’"}
_NONE_WORDS = {"无", "没有", "none", "无实体", "未发现实体", "null", "n/a"}


def parse_entity_lines(text: str, type_names: Mapping[str, str]) -> set[tuple[str, str]]:
    """Lines `实体：类型` (also `实体:类型`, `实体（类型）`, bullets and numbering stripped)
    -> {(surface, type_code)}. `type_names` maps what the model may write (display names and
    codes) to the type code; an unknown type is kept as written (it can only be a false
    positive). Several entities on one line may be separated by `；` or `;`."""
    found: set[tuple[str, str]] = set()
    for line in entity_chunks(text):
        if line.lower() in _NONE_WORDS:
            continue
        surface = etype = None
        paren = re.fullmatch(r"(.+?)\s*[（(]([^()（）]+)[)）]", line)
        if paren:
            surface, etype = paren.group(1), paren.group(2)
        else:
            for sep in ("：", ":", "\t", " - "):
                if sep in line:
                    surface, etype = line.rsplit(sep, 1)
                    break
        if surface is None or etype is None:
            continue
        surface, etype = _unquoted(surface), _unquoted(etype)
        if surface and etype:
            found.add((surface, type_names.get(etype, etype)))
    return found


def _unquoted(text: str) -> str:
    """`text` without the quotes around it (`“头痛”` -> `头痛`); a quote that is part of the
    entity (`抗溶血素链球菌“O”`) stays."""
    text = text.strip()
    while len(text) >= 2 and _QUOTES.get(text[0]) == text[-1]:
        text = text[1:-1].strip()
    return text


def entity_chunks(text: str) -> list[str]:
    """The pieces `parse_entity_lines` reads, one per entity it may find: each line split at
    `；`/`;`, bullets and numbering stripped, empty pieces dropped. A format check asks of every
    piece whether it parses, so prose between entity lines is seen, not silently skipped."""
    out = []
    for raw_line in text.splitlines():
        for chunk in re.split(r"[；;]", raw_line):
            line = _BULLET.sub("", chunk).strip().strip("。，,")
            if line:
                out.append(line)
    return out


def says_no_entities(text: str) -> bool:
    """The whole answer is the "no entity" reply (`无`, `没有`, `无实体`, `none` ...), which
    the NER prompt asks for when a text has none; an empty answer is not one."""
    chunks = entity_chunks(text)
    return bool(chunks) and all(c.lower() in _NONE_WORDS for c in chunks)


def _letters_pattern(letters: str) -> str:
    return "[" + re.escape(letters) + "]"


# what joins the letters of one multi-letter answer ("A、C", "A和C"); strict parsing also joins
# hedges ("B或C", "B还是C", "B or C"), so a hedge reads as both letters, never as the last one
_JOIN = r"[、,，和及与/]"
_HEDGE = r"或者|或|还是|也可能是|OR"
_BOXED = re.compile(r"\\BOXED\s*\{((?:[^{}]|\{[^{}]*\})*)\}")
_EXPLICIT_HEAD = r"(?:答案|选项|正确选项|应选|选择|选)\s*(?:是|为|应为|应该是)?\s*[：:]?\s*[（(]?"
# strict: a statement stays on one line, so a question ending in `应首选` followed by its option
# list (a prompt echoed back) is not read as choosing option A
_STRICT_HEAD = _EXPLICIT_HEAD.replace(r"\s", r"[^\S\n]")


def _group(letters: str, strict: bool) -> str:
    lp = _letters_pattern(letters)
    join = rf"(?:{_JOIN}|{_HEDGE})" if strict else _JOIN
    return rf"({lp}(?:\s*{join}?\s*{lp})*)(?![A-Z])"


def _statements(
    text: str, valid: str, strict: bool, options: Mapping[str, str] | None
) -> list[tuple[int, bool, frozenset[str]]]:
    """(position, is a boxed answer, letters) of every explicit statement, in order."""
    up = text.upper()
    group = _group(valid, strict)
    head = _STRICT_HEAD if strict else _EXPLICIT_HEAD
    # an option whose text starts with a letter (`B超`, `X线`, `CT`): `答案是B超` names it
    lettered = sorted(
        ((k, v.upper()) for k, v in (options or {}).items() if k in valid and len(v) > 1),
        key=lambda kv: -len(kv[1]),
    )
    found = []
    for m in re.finditer(head + group, up):
        named = next((k for k, v in lettered if up.startswith(v, m.start(1))), None)
        letters = frozenset(named) if named else frozenset(c for c in m.group(1) if c in valid)
        found.append((m.start(), False, letters))
    for m in _BOXED.finditer(up):
        inner = re.sub(r"\\(?:TEXT|MATHRM|TEXTBF|MATHBF)\s*\{|[{}]", "", m.group(1))
        whole = re.fullmatch(r"[\s（(]*" + group + r"[\s)）.。]*", inner)
        if whole:
            found.append((m.start(), True, frozenset(c for c in whole.group(1) if c in valid)))
    return sorted(found, key=lambda f: f[0])


def stated_choices(
    text: str,
    letters: Sequence[str],
    options: Mapping[str, str] | None = None,
    strict: bool = False,
) -> list[frozenset[str]]:
    """Every explicit answer statement in `text`, in order: `答案是/为/：X`, `选X`, `选项X` and
    `\\boxed{X}` (also `\\boxed{\\text{X}}`). More than one distinct set means the answer
    contradicts itself (`答案：B 答案：C`); a reward must not pay for either."""
    valid = "".join(letters)
    if not text or not valid:
        return []
    return [chosen for _, _, chosen in _statements(text, valid, strict, options)]


def parse_choice_letters(
    text: str,
    letters: Sequence[str],
    options: Mapping[str, str] | None = None,
    *,
    strict: bool = False,
) -> frozenset[str]:
    """Answer letters for a multiple-choice question (several for multi-answer questions).

    Tries, in order: an explicit `答案是/为/：X` phrase (`答案是B超` naming the option whose
    text is `B超`), a `\\boxed{X}`, letters at the very start, a single option text quoted
    verbatim, then standalone option letters anywhere (only if exactly one distinct letter
    appears, so "A 错，B 对" is not read as AB).

    `strict` (what a reward needs: a parse it pays for must not be gameable) refuses more:
    explicit statements that disagree (`答案：B 答案：C`), an answer that quotes every option's
    text without an explicit statement (the option list echoed back), and hedges (`B或C`,
    `可能是B也可能是C`), which read as every letter hedged over."""
    valid = "".join(letters)
    if not text or not valid:
        return frozenset()
    up = text.upper()
    group = _group(valid, strict)
    stated = _statements(text, valid, strict, options)
    if strict and len({chosen for _, _, chosen in stated}) > 1:
        return frozenset()
    phrases = [chosen for _, boxed, chosen in stated if not boxed]
    if phrases:
        return phrases[0]
    if stated:  # a boxed answer
        return stated[0][2]
    texts = [v for k, v in (options or {}).items() if v and k in valid]
    if strict and len(texts) > 1 and all(v in text for v in texts):
        return frozenset()
    lead = re.match(r"^\s*[（(\[]?" + group + _END, up)
    if lead:
        return frozenset(c for c in lead.group(1) if c in valid)
    if options:
        quoted = [k for k, v in options.items() if v and v in text and k in valid]
        if len(quoted) == 1:
            return frozenset(quoted)
    end = rf"(?=$|[\s\.．、:：)）\],，。;；]|{_HEDGE}|也)" if strict else _END
    loose = set(re.findall(rf"(?<![A-Z]){_letters_pattern(valid)}(?![A-Z])" + end, up))
    if len(loose) == 1:
        return frozenset(loose)
    return frozenset()


def parse_scale_answer(text: str, shown_options: Sequence[str]) -> int | None:
    """Position (0-based, in the order shown) of the option a Likert answer picks, or None.

    Accepts a label letter (A = first shown), the option's words (leftmost, longest match,
    so 非常不同意 is not read as 同意), or a number 1..K (the K-th shown option)."""
    k = len(shown_options)
    letters = "ABCDEFGHIJ"[:k]
    if not text.strip():
        return None
    up = text.upper()
    lead = re.match(rf"^\s*[（(\[]?([{letters}])(?![A-Z])" + _END, up)
    if lead:
        return letters.index(lead.group(1))
    keyed = re.search(
        rf"(?:答案|选项|选择|选)\s*(?:是|为)?\s*[：:]?\s*[（(]?([{letters}])(?![A-Z])", up
    )
    if keyed:
        return letters.index(keyed.group(1))
    by_len = sorted(range(k), key=lambda i: -len(shown_options[i]))
    for pos in range(len(text)):
        for i in by_len:
            opt = shown_options[i]
            if opt and text.startswith(opt, pos):
                return i
    number = re.search(r"(?<!\d)([1-9])(?!\d)", text)
    if number and 1 <= int(number.group(1)) <= k:
        return int(number.group(1)) - 1
    loose = set(re.findall(rf"(?<![A-Z])([{letters}])(?![A-Z])" + _END, up))
    if len(loose) == 1:
        return letters.index(loose.pop())
    return None
