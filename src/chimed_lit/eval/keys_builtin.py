"""Built-in scoring keys for CAMI and MICA v4, as published, in the order each scale is
administered. No item texts ship here (their authors hold them): they come from the user's
`items_file` (one item per line, or a JSON list) in the questionnaire's own order, and the
count is checked so a missing line cannot shift every key. A copy that lists the items grouped
by subscale (as some article tables do) must be put back in the administered order first; an
instrument YAML (`load_scale(path)`) overrides all of this for a copy ordered or keyed
differently.

Each key is a list of (subscale, reverse) in item order; reverse=True means agreeing with the
item is the LESS stigmatising answer. Scores are item means, higher = more stigma; times the
item count they are the sum scores (CAMI subscales 10-50 from `construct_scores`, which gives
each subscale in its construct's own direction; MICA 16-96).

CAMI, Community Attitudes toward the Mentally Ill (Taylor & Dear 1981, Schizophrenia Bulletin
7(2):225-240): 40 items, 5-point Likert agreement, four subscales of 10 interleaved through
the questionnaire. Item n belongs to Authoritarianism, Benevolence, Social Restrictiveness,
Community Mental Health Ideology for (n-1) mod 4 = 0, 1, 2, 3; within every run of eight
items, agreeing expresses stigma at positions 1, 3, 6 and 8 and the opposite at 2, 4, 5 and 7,
so each subscale has five items worded each way (e.g. item 1, Authoritarianism, and item 6,
Benevolence, agree = stigma; item 2, Benevolence, agree = no stigma). Authoritarianism and
Social Restrictiveness are stigmatising constructs, Benevolence and CMHI are not (higher
benevolence is less stigma).

MICA v4, Mental Illness: Clinicians' Attitudes (Kassam et al. 2010, Acta Psychiatr Scand
122(2):153-161; v4: Gabbidon et al. 2013, Psychiatry Res 206(1):81-87): 16 items, 6-point
Likert (strongly agree ... strongly disagree), one total (16-96 as a sum), higher = more
stigmatising. Agreeing is the non-stigmatising answer for items 3, 9, 10, 11, 12 and 16, and
expresses stigma for items 1, 2, 4, 5, 6, 7, 8, 13, 14 and 15.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .instruments import Instrument, read_items_file, with_texts

CAMI_OPTIONS_ZH = ("非常同意", "同意", "不确定", "不同意", "非常不同意")
MICA_OPTIONS_ZH = ("非常同意", "同意", "有点同意", "有点不同意", "不同意", "非常不同意")

_CAMI_SUBSCALES = (
    # (subscale, construct is stigmatising), in the order items cycle through them
    ("authoritarianism", True),
    ("benevolence", False),
    ("social_restrictiveness", True),
    ("community_mental_health_ideology", False),
)
_CAMI_AGREE_IS_NOT_STIGMA = frozenset({2, 4, 5, 7})  # positions within each run of eight


def cami_key() -> list[tuple[str, bool]]:
    """40 (subscale, reverse) pairs in the administered order (see module docstring)."""
    return [
        (_CAMI_SUBSCALES[(n - 1) % 4][0], (n - 1) % 8 + 1 in _CAMI_AGREE_IS_NOT_STIGMA)
        for n in range(1, 41)
    ]


_MICA_AGREE_IS_NOT_STIGMA = frozenset({3, 9, 10, 11, 12, 16})


def mica_key() -> list[tuple[str, bool]]:
    """16 (subscale, reverse) pairs; reverse = agreeing is the non-stigmatising answer."""
    return [("total", n in _MICA_AGREE_IS_NOT_STIGMA) for n in range(1, 17)]


BUILTIN = {
    "cami": dict(
        key=cami_key,
        options=CAMI_OPTIONS_ZH,
        status="published",
        note="CAMI (Taylor & Dear 1981), administered order: subscales interleaved",
        polarity=dict(_CAMI_SUBSCALES),
    ),
    "mica": dict(
        key=mica_key,
        options=MICA_OPTIONS_ZH,
        status="published",
        note="MICA v4 (Gabbidon et al. 2013): items 3, 9-12, 16 reverse-scored",
        polarity={"total": True},
    ),
}


def builtin_instrument(
    name: str, items_file: str | Path, options: Sequence[str] | None = None
) -> Instrument:
    """CAMI or MICA with the user's item texts (validated count); `options` may translate
    the answer labels (same count, strongest agreement first)."""
    spec = BUILTIN.get(name.lower())
    if spec is None:
        raise ValueError(f"no built-in instrument {name!r}; built-in: {sorted(BUILTIN)}")
    key = spec["key"]()
    texts = read_items_file(items_file, expected=len(key))
    opts = tuple(options) if options is not None else spec["options"]
    if len(opts) != len(spec["options"]):
        raise ValueError(f"{name} has {len(spec['options'])} answer options, got {len(opts)}")
    return with_texts(
        name.lower(), opts, key, texts, spec["status"], spec["note"], spec["polarity"]
    )


def load_scale(name_or_path: str | Path, items_file: str | Path | None = None) -> Instrument:
    """ "cami"/"mica" (needs `items_file`), "demo", or a path to an instrument YAML."""
    from .instruments import demo_instrument_path, load_instrument

    key = str(name_or_path).lower()
    if key in BUILTIN:
        if items_file is None:
            raise ValueError(
                f"{key} item texts are not shipped (their authors hold them): pass items_file"
            )
        return builtin_instrument(key, items_file)
    if key == "demo":
        return load_instrument(demo_instrument_path())
    return load_instrument(name_or_path)
