"""Which installed font can draw a label, so charts never show boxes for missing glyphs.

Matplotlib draws a character its font lacks as an empty box (and warns "Glyph ... missing").
Chinese labels need a CJK font, which many servers lack; charts ask `font_with_glyphs` first
and fall back to labels the default font can draw (`drawable_name`). The "Last Resort" font
maps every code point to a placeholder box, so it never counts as having a glyph.
"""

from __future__ import annotations

import re
from functools import lru_cache

# tried first, in this order, when installed (common CJK families on Linux, macOS, Windows)
PREFERRED = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "PingFang SC",
    "Microsoft YaHei",
    "SimHei",
    "Heiti SC",
    "Arial Unicode MS",
)
_NOT_GLYPHS = ("Last Resort",)


@lru_cache(maxsize=256)
def _charmap(fname: str) -> frozenset[int]:
    from matplotlib import ft2font

    try:
        return frozenset(ft2font.FT2Font(fname).get_charmap())
    except (OSError, RuntimeError):  # an unreadable font file draws nothing
        return frozenset()


def _family_file(family: str) -> str | None:
    """The file of `family`'s upright, regular face (the one labels are drawn in), if installed."""
    from matplotlib import font_manager

    faces = [f for f in font_manager.fontManager.ttflist if f.name == family]
    if not faces:
        return None

    def distance(face: font_manager.FontEntry) -> tuple[bool, int]:
        weight = font_manager.weight_dict.get(face.weight, face.weight)
        return face.style != "normal", abs(int(weight) - 400)

    return min(faces, key=distance).fname


def _needed(text: str) -> set[int]:
    return {ord(c) for c in text if not c.isspace()}


def has_glyphs(family: str, text: str) -> bool:
    """True when the installed font `family` can draw every visible character of `text`."""
    if family.startswith(_NOT_GLYPHS):
        return False
    fname = _family_file(family)
    return fname is not None and _needed(text) <= _charmap(fname)


def default_family() -> str:
    """The family matplotlib draws text in by default (e.g. DejaVu Sans)."""
    from matplotlib import font_manager

    path = font_manager.findfont(font_manager.FontProperties())
    return font_manager.get_font(path).family_name


def font_with_glyphs(text: str) -> str | None:
    """An installed font family that draws every character of `text` (the default font when it
    can), or None when no installed font can."""
    from matplotlib import font_manager

    installed = dict.fromkeys(f.name for f in font_manager.fontManager.ttflist)
    order = [default_family(), *(f for f in PREFERRED if f in installed), *sorted(installed)]
    return next((f for f in dict.fromkeys(order) if has_glyphs(f, text)), None)


def drawable_name(name: str, family: str, fallback: str) -> str:
    """`name` if `family` draws it, else the part it can draw (e.g. 'ChiMed-GPT 医疗' ->
    'ChiMed-GPT'), else `fallback` (e.g. 'model 2')."""
    if has_glyphs(family, name):
        return name
    kept = "".join(c if has_glyphs(family, c) else " " for c in name)
    kept = re.sub(r"\s+", " ", kept).strip(" -_/.:()")
    return kept if re.search(r"\w", kept) else fallback
