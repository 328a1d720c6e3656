"""The one override checker: every command's `key=value` arguments against the composed config,
before anything is built.

Hydra stops at the first bad override with a stack trace; users want every problem at once, in
words: unknown keys (with a suggestion), unknown group options, values of the wrong type. Each
command names its primary config (`fit` for fit and plan, `eval`, `generate`, `chat`); a
`<stage>.key=value` argument routed to another stage is checked on that stage's own config and
reported under the name the user typed, never the internal `stage_overrides`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any

from omegaconf import DictConfig, open_dict
from omegaconf.errors import OmegaConfBaseException

from chimed_lit.cli.argv import Override
from chimed_lit.cli.override_values import override_values, type_problem
from chimed_lit.io.errors import ConfigError
from chimed_lit.run.compose import composing
from chimed_lit.run.run_wide import is_run_wide

Validate = Callable[[DictConfig], list[str]]
# mappings whose keys are free-form (checked by the stage's preflight instead): a new key under
# one is added, as `++key=value`
OPEN_MAPPINGS = ("stage.reward_options",)


def group_options(group: str) -> list[str]:
    from hydra.core.global_hydra import GlobalHydra

    return sorted(GlobalHydra.instance().config_loader().get_group_options(group))


def config_groups() -> list[str]:
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.object_type import ObjectType

    loader = GlobalHydra.instance().config_loader()
    return sorted(
        g
        for g in loader.list_groups("")
        if g != "hydra" and loader.get_group_options(g, results_filter=ObjectType.CONFIG)
    )


def first_line(e: BaseException) -> str:
    text = str(e).strip() or str(e.__cause__ or type(e).__name__).strip()
    return text.splitlines()[0]


def suggest_key(cfg: DictConfig, key: str, shown_prefix: str = "") -> str:
    """' (did you mean 'a.b'?)' with the first unknown segment of `key` replaced by the
    closest existing key at that level (the rest kept), or ''."""
    parts, node = key.split("."), cfg
    for i, part in enumerate(parts):
        if not isinstance(node, DictConfig):
            return ""
        if part not in node:
            close = difflib.get_close_matches(part, [str(k) for k in node], n=1)
            if not close:
                return ""
            guess = ".".join([*parts[:i], close[0], *parts[i + 1 :]])
            return f" (did you mean '{shown_prefix}{guess}'?)"
        node = node._get_node(part)
    return ""


def _node(cfg: DictConfig, key: str) -> Any:
    """The config node at a dotted key (present even when its value is ??? or null), or None."""
    node = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig):
            return None
        try:  # `part in node` is False for ??? values; struct mode raises for unknown keys
            node = node._get_node(part)
        except (OmegaConfBaseException, KeyError, AttributeError):
            return None
        if node is None:
            return None
    return node


def _trainer_args() -> set[str]:
    import inspect

    from lightning.pytorch import Trainer

    return set(inspect.signature(Trainer.__init__).parameters) - {"self"}


def _parse(items: list[Override], problems: list[str]) -> list[tuple[Override, Any]]:
    """Each override with Hydra's parse of its stage-local form; unparseable ones to `problems`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    parsed = []
    for item in items:
        try:
            parsed.append((item, parser.parse_overrides([item.local])[0]))
        except HydraException as e:
            problems.append(f"cannot parse {item.typed!r}: {first_line(e)}")
    return parsed


PLUGIN_HINT = {  # Hydra plugin groups: their options come from installed packages
    "hydra/sweeper": " (optuna, ax, nevergrad: pip install hydra-<name>-sweeper)",
    "hydra/launcher": " (joblib, submitit_local, ray: pip install hydra-<name>-launcher)",
}
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def _picked_sweeper(picks: list[str]) -> bool:
    return any(p.lstrip("+").startswith("hydra/sweeper=") for p in picks)


class _Check:
    """Overrides checked against one composition of one primary config (and base overrides)."""

    def __init__(self, config_name: str, base: list[str], problems: list[str]):
        from hydra import compose

        self.config_name, self.base, self.problems = config_name, base, problems
        hc = compose(config_name, overrides=base, return_hydra_config=True).hydra
        self.groups = {str(g) for g in hc.runtime.choices}  # hydra/sweeper etc. included
        self.out: dict[int, str] = {}  # id(override) -> the text Hydra gets
        self.cfg: DictConfig | None = None
        self.sweeper = ""

    def run(self, parsed: list[tuple[Override, Any]]) -> None:
        """Check each override; what passes goes to `self.out`, what does not to `problems`."""
        from hydra import compose
        from hydra.errors import HydraException

        picks = [
            i.local for i, ov in parsed if ov.key_or_group in self.groups and self._group(i, ov)
        ]
        try:
            cfg = compose(self.config_name, overrides=self.base + picks, return_hydra_config=True)
        except HydraException as e:
            self.problems.append(first_line(e))
            return
        named = any(ov.key_or_group == "hydra/sweeper" for _, ov in parsed)
        # a sweeper the user named but that is not installed: reported above, not guessed at
        picked = not named or _picked_sweeper(picks)
        self.sweeper = str(cfg.hydra.sweeper.get("_target_", "")) if picked else ""
        with open_dict(cfg):
            del cfg["hydra"]
        self.cfg = cfg
        for item, ov in parsed:
            key = ov.key_or_group
            edits = ov.is_add() or ov.is_delete() or ov.is_force_add() or ov.package is not None
            if key in self.groups:
                continue  # checked by _group
            if item.upstream and edits:  # the pipeline sets another stage's keys, no more
                self.problems.append(
                    f"{item.typed}: a stage prefix sets a key of that stage; it cannot add or "
                    f"delete one (set {item.stage}.{key}=VALUE)"
                )
            elif edits or key.startswith(("hydra", "stage_overrides")):
                self.out[id(item)] = item.text  # Hydra's own keys, additions, deletions
            else:
                self._check_key(item, ov)

    def _check_key(self, item: Override, ov: Any) -> None:
        key = ov.key_or_group
        shown = f"{item.stage}.{key}" if item.stage else key
        node = _node(self.cfg, key)
        if node is None:
            self._unknown(item, key, shown)
            return
        values = override_values(ov)
        if values is None and self.sweeper == BASIC_SWEEPER:
            self.problems.append(
                f"{item.typed}: the basic sweeper lists values (a,b, choice(...), range(...)); "
                "interval(...) needs a sampling sweeper such as hydra/sweeper=optuna"
            )
            return
        raw = node._value()
        if isinstance(raw, str) and "${" in raw:
            raw = None  # an interpolation: its type is decided elsewhere
        found = [m for v in values or [] if (m := type_problem(shown, raw, v)) is not None]
        self.problems += found
        if not found:
            self.out[id(item)] = item.text

    def _unknown(self, item: Override, key: str, shown: str) -> None:
        """An unknown key, unless it is a Lightning Trainer argument the YAML leaves out (the
        target stage takes it as an addition; another stage's composition cannot)."""
        open_parent = next((m for m in OPEN_MAPPINGS if key.startswith(m + ".")), None)
        if open_parent and _node(self.cfg, open_parent) is not None:
            self.out[id(item)] = "++" + item.text
            return
        head, _, arg = key.partition(".")
        trainer_arg = head == "trainer" and "." not in arg and arg in _trainer_args()
        if trainer_arg and _node(self.cfg, "trainer") is not None:
            if not item.upstream:
                self.out[id(item)] = "+" + item.text
                return
            self.problems.append(
                f"{shown}: a Trainer argument configs/trainer does not list can be set on "
                f"the target stage only (stage={item.stage} {key}=...)"
            )
            return
        prefix = f"{item.stage}." if item.stage else ""
        self.problems.append(f"unknown key '{shown}'{suggest_key(self.cfg, key, prefix)}")

    def _group(self, item: Override, ov: Any) -> bool:
        """Check a group choice; True when it is one valid option (composed with)."""
        key = ov.key_or_group
        shown = f"{item.stage}.{key}" if item.stage else key
        opts = group_options(key)
        listed = f"{key} is one of {', '.join(o for o in opts if not o.startswith('_'))}"
        listed += PLUGIN_HINT.get(key, "")
        values = override_values(ov, opts)
        before = len(self.problems)
        if values == [] and ov.is_sweep_override():
            self.problems.append(f"{item.typed}: matches no option; {listed}")
        for v in values or []:
            for x in v if isinstance(v, list) else [v]:
                if x is not None and str(x) not in opts:
                    self.problems.append(f"{shown}={x}: no such option; {listed}")
        ok = len(self.problems) == before
        if ok:
            self.out[id(item)] = item.text
        return ok and not ov.is_sweep_override()


def check_overrides(
    overrides: list[Override] | list[str],
    config_name: str = "fit",
    validate: Validate | None = None,
    config_dirs: Sequence[str] = (),
) -> list[str]:
    """Check `overrides` for the primary config `config_name` (over the shipped configs plus
    `config_dirs`, a command's `--config-dir` folders); return them as Hydra gets them (a
    Lightning Trainer argument the YAML does not list becomes an addition, `+trainer.x=v`).
    With `validate`, also check the values of the config they compose. Raise one `ConfigError`
    listing every problem."""
    items = [o if isinstance(o, Override) else Override(o, o) for o in overrides]
    problems: list[str] = []
    parsed = _parse(items, problems)
    out: dict[int, str] = {}
    with composing(config_dirs):
        main = _Check(config_name, [], problems)
        main.run([(i, ov) for i, ov in parsed if not i.upstream])
        out.update(main.out)
        # a stage-prefixed key of another stage: checked on that stage's config as the
        # pipeline composes it (the stage's YAML under the run-wide overrides)
        wide = [
            out[id(i)]
            for i, ov in parsed
            if id(i) in out and is_run_wide(i.text) and not ov.is_sweep_override()
        ]
        for stage in dict.fromkeys(i.stage for i, _ in parsed if i.upstream):
            check = _Check("fit", [f"stage={stage}", *wide], problems)
            check.run([(i, ov) for i, ov in parsed if i.upstream and i.stage == stage])
            out.update(check.out)
        if validate is not None:
            problems += _validated(config_name, _composable(parsed, out), validate, problems)
    if problems:
        raise ConfigError(problems)
    return [out.get(id(i), i.text) for i in items]


def _composable(parsed: list[tuple[Override, Any]], out: dict[int, str]) -> list[str]:
    """The checked overrides one composition can take (no sweeps, no other stage's keys)."""
    return [
        out[id(i)]
        for i, ov in parsed
        if id(i) in out and not i.upstream and not ov.is_sweep_override()
    ]


def _validated(config_name: str, good: list[str], validate: Validate, seen: list[str]) -> list[str]:
    """Problems `validate` finds in the config `good` composes (those not already listed)."""
    from hydra import compose
    from hydra.errors import HydraException

    try:
        cfg = compose(config_name, overrides=good)
    except HydraException as e:
        return [first_line(e)]
    try:
        return [p for p in validate(cfg) if p not in seen]
    except OmegaConfBaseException as e:  # e.g. a required key deleted with ~
        return [f"cannot check the values: {first_line(e)}"]
