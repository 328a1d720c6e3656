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
_NONE_WORDS = {"无", "没有", "none", "无实体", "未发现实体", "null", "n/a"}


def parse_entity_lines(text: str, type_names: Mapping[str, str]) -> set[tuple[str, str]]:
    """Lines `实体：类型` (also `实体:类型`, `实体（类型）`, bullets and numbering stripped)
    -> {(surface, type_code)}. `type_names` maps what the model may write (display names and
    codes) to the type code; an unknown type is kept as written (it can only be a false
    positive). Several entities on one line may be separated by `；` or `;`."""
    found: set[tuple[str, str]] = set()
    for raw_line in text.splitlines():
        for chunk in re.split(r"[；;]", raw_line):
            line = _BULLET.sub("", chunk).strip().strip("。，,")
            if not line or line.lower() in _NONE_WORDS:
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
            surface = surface.strip().strip("“”\"'「」")
            etype = etype.strip().strip("“”\"'「」")
            if surface and etype:
                found.add((surface, type_names.get(etype, etype)))
    return found


def _letters_pattern(letters: str) -> str:
    return "[" + re.escape(letters) + "]"


def parse_choice_letters(
    text: str, letters: Sequence[str], options: Mapping[str, str] | None = None
) -> frozenset[str]:
    """Answer letters for a multiple-choice question (several for multi-answer questions).

    Tries, in order: an explicit `答案是/为/：X` phrase, letters at the very start, a single
    option text quoted verbatim, then standalone option letters anywhere (only if exactly
    one distinct letter appears, so "A 错，B 对" is not read as AB)."""
    valid = "".join(letters)
    if not text or not valid:
        return frozenset()
    up = text.upper()
    lp = _letters_pattern(valid)
    group = rf"({lp}(?:\s*[、,，和及与/]?\s*{lp})*)(?![A-Z])"
    explicit = re.search(
        r"(?:答案|选项|正确选项|应选|选择|选)\s*(?:是|为|应为|应该是)?\s*[：:]?\s*[（(]?" + group,
        up,
    )
    if explicit:
        return frozenset(c for c in explicit.group(1) if c in valid)
    lead = re.match(r"^\s*[（(\[]?" + group + _END, up)
    if lead:
        return frozenset(c for c in lead.group(1) if c in valid)
    if options:
        quoted = [k for k, v in options.items() if v and v in text and k in valid]
        if len(quoted) == 1:
            return frozenset(quoted)
    loose = set(re.findall(rf"(?<![A-Z]){lp}(?![A-Z])" + _END, up))
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
