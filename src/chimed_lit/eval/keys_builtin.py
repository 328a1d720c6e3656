"""Built-in scoring keys for CAMI and MICA v4 (no item texts: those come from `items_file`).

Each key is a list of (subscale, reverse) in item order; reverse=True means agreeing with the
item is the LESS biased answer. What is and is not confirmed is stated per scale; results
carry `key_status` so a report never presents an unconfirmed key as the published one.

CAMI, Community Attitudes toward the Mentally Ill (Taylor & Dear 1981, Schizophrenia Bulletin
7(2):225-240). Confirmed from the article's abstract and secondary sources: 40 items, four
subscales of 10 (Authoritarianism, Benevolence, Social Restrictiveness, Community Mental
Health Ideology), 5-point Likert agreement; each subscale balances items worded for the
construct and against it. Authoritarianism and Social Restrictiveness are stigmatising
constructs, Benevolence and Community Mental Health Ideology are not.
Item ORDER used here (the "grouped" order of the article's item table): items 1-10
Authoritarianism, 11-20 Benevolence, 21-30 Social Restrictiveness, 31-40 Community Mental
Health Ideology; within each block the first five items are worded for the construct and the
last five against it. Evidence for that layout: a table of the ten Social Restrictiveness
items quoted from Taylor & Dear (Ethiop. J. Health Sci. 2018;28(4):483-494, PMC6308735,
Table 3) lists five restrictive statements, then five non-restrictive ones; a Catalan CAMI
short-form table (BMC Public Health 2016, doi 10.1186/s12889-016-2815-5, Table 2) lists its
Benevolence items the same way (for the construct first). NOT confirmed: the same 5 + 5 split
for the Authoritarianism and CMHI blocks of the full 40-item table, and the interleaved
numbering of the administered questionnaire. Supply the item texts in the grouped order, or
write your own instrument YAML if your copy is ordered or keyed differently.

MICA v4, Mental Illness: Clinicians' Attitudes (Kassam et al. 2010, Acta Psychiatr Scand
122(2):153-161; v4: Gabbidon et al. 2013, Psychiatry Res 206(1):81-87). Confirmed: 16 items,
6-point Likert (strongly agree, agree, somewhat agree, somewhat disagree, disagree, strongly
disagree), total score 16-96, higher = more stigmatising (MedEdPORTAL 2015 critical synthesis
of the scale). The scale is scored as one total, so there is one subscale, "total".
NOT confirmed: which items are reverse-scored. The manual that states it is distributed only
on registration. The key below is read from the items' wording (agreeing is the
non-stigmatising answer for items 3, 8, 9, 10, 11, 12 and 16); a search lead listing items
3, 8, 9, 10, 11, 13 and 15 could not be verified and disagrees on items 12, 13, 15 and 16.
Check it against the manual before publishing MICA numbers; pass your own instrument YAML
to override.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from .instruments import Instrument, read_items_file, with_texts

CAMI_OPTIONS_ZH = ("非常同意", "同意", "不确定", "不同意", "非常不同意")
MICA_OPTIONS_ZH = ("非常同意", "同意", "有点同意", "有点不同意", "不同意", "非常不同意")

_CAMI_BLOCKS = (
    # (subscale, construct is stigmatising)
    ("authoritarianism", True),
    ("benevolence", False),
    ("social_restrictiveness", True),
    ("community_mental_health_ideology", False),
)


def cami_key() -> list[tuple[str, bool]]:
    """40 (subscale, reverse) pairs in the grouped order (see module docstring)."""
    key = []
    for subscale, stigmatising in _CAMI_BLOCKS:
        for k in range(10):
            worded_for_construct = k < 5
            # agreeing is biased when the item endorses a stigmatising construct, or rejects
            # a non-stigmatising one
            key.append((subscale, worded_for_construct != stigmatising))
    return key


_MICA_AGREE_IS_NOT_STIGMA = frozenset({3, 8, 9, 10, 11, 12, 16})


def mica_key() -> list[tuple[str, bool]]:
    """16 (subscale, reverse) pairs; reverse = agreeing is non-stigmatising (UNCONFIRMED)."""
    return [("total", n in _MICA_AGREE_IS_NOT_STIGMA) for n in range(1, 17)]


BUILTIN = {
    "cami": dict(
        key=cami_key,
        options=CAMI_OPTIONS_ZH,
        status="partial",
        note="CAMI grouped order; subscale blocks confirmed, 5+5 split partly confirmed",
        polarity={s: b for s, b in _CAMI_BLOCKS},
    ),
    "mica": dict(
        key=mica_key,
        options=MICA_OPTIONS_ZH,
        status="unconfirmed",
        note="MICA v4 reverse-keyed items read from item wording, not from the manual",
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
    warnings.warn(
        f"{name} scoring key is {spec['status']}: {spec['note']} (see keys_builtin docstring)",
        UserWarning,
        stacklevel=2,
    )
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
