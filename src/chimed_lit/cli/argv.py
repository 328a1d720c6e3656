"""Splitting a command's arguments: Hydra flags apart from `key=value` overrides, and
`<stage>.key=value` routed to the stage it names.

Every command (`fit`, `eval`, `plan`, `generate`, `chat`) splits its arguments here, so the list
of Hydra flags that take a value and the stage-prefix rule exist once. Each override keeps the
text the user typed beside the text Hydra gets, so a problem is reported under the typed name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from chimed_lit.run.run_wide import override_key

# Hydra flags whose value is the next argument (`--cfg job`, `-cn fit`); `--info` may go bare
VALUE_FLAGS = frozenset(
    {
        "--cfg",
        "-c",
        "--package",
        "-p",
        "--config-name",
        "-cn",
        "--config-dir",
        "-cd",
        "--config-path",
        "-cp",
        "--experimental-rerun",
    }
)
INFO_FLAGS = frozenset({"--info", "-i"})
INFO_CHOICES = frozenset({"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"})
MULTIRUN_FLAGS = frozenset({"--multirun", "-m"})


@dataclass(frozen=True)
class Override:
    """One `key=value` argument: as typed, as Hydra gets it, and the stage prefix it had."""

    typed: str
    text: str
    stage: str | None = None  # `sft` for `sft.trainer.max_steps=3`
    upstream: bool = False  # routed to `++stage_overrides.<stage>` (checked on that stage)

    @property
    def local(self) -> str:
        """The override as the named stage reads it (`trainer.max_steps=3`)."""
        if self.stage is None:
            return self.typed
        lead = self.typed[: len(self.typed) - len(self.typed.lstrip("+~"))]
        return lead + self.typed[len(lead) + len(self.stage) + 1 :]


@dataclass(frozen=True)
class CommandLine:
    """A command's arguments, split: Hydra flags (with their values) and overrides."""

    flags: list[str] = field(default_factory=list)
    overrides: list[Override] = field(default_factory=list)

    @property
    def texts(self) -> list[str]:
        """The overrides as Hydra gets them."""
        return [o.text for o in self.overrides]

    @property
    def multirun(self) -> bool:
        return any(f in MULTIRUN_FLAGS for f in self.flags)

    @property
    def config_dirs(self) -> list[str]:
        """The folders given by `--config-dir DIR` / `-cd DIR` (searched after the shipped
        configs: where a stage kept outside the package has its `stage/<name>.yaml`)."""
        return config_dirs(self.flags)

    def argv(self, overrides: list[str] | None = None) -> list[str]:
        """What Hydra's own parser reads: the overrides (`overrides`: as checked), then the
        flags, so a bare `--info` never takes an override for its value."""
        return [*(self.texts if overrides is None else overrides), *self.flags]


def split_flags(args: list[str]) -> tuple[list[str], list[str]]:
    """(flags with their values, the other arguments), each in the order given."""
    flags: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        nxt = args[i + 1] if i + 1 < len(args) else None
        if not a.startswith("-"):
            rest.append(a)
        else:
            flags.append(a)
            if a in VALUE_FLAGS:
                takes = nxt is not None and not nxt.startswith("-") and "=" not in nxt
            else:
                takes = a in INFO_FLAGS and nxt in INFO_CHOICES
            if takes:
                flags.append(nxt)
                i += 1
        i += 1
    return flags, rest


def config_dirs(flags: list[str]) -> list[str]:
    """The value of `--config-dir` / `-cd` among `flags` (also written `--config-dir=DIR`), as a
    list of at most one: Hydra's app searches the last one given, so the checker does too."""
    out = []
    for i, f in enumerate(flags):
        name, eq, value = f.partition("=")
        if name in ("--config-dir", "-cd"):
            if eq:
                out.append(value)
            elif i + 1 < len(flags):
                out.append(flags[i + 1])
    return out[-1:]


def default_stage() -> str:
    """The stage `fit.yaml` picks when the command line names none."""
    from importlib.resources import files

    from omegaconf import DictConfig, OmegaConf

    from chimed_lit.run.compose import CONFIG_MODULE

    raw = OmegaConf.create((files(CONFIG_MODULE) / "fit.yaml").read_text(encoding="utf-8"))
    for entry in raw.get("defaults", []):
        if isinstance(entry, DictConfig) and "stage" in entry:
            return str(entry.stage)
    return "pretrain"


def route_stage_prefixes(
    overrides: list[str], target: str | None = None, config_dirs: Sequence[str] = ()
) -> list[Override]:
    """`sft.x=v` -> `x=v` when sft is the target stage (`stage=`, else `target`, else fit.yaml's
    default), else `++stage_overrides.sft.x=v`; run-wide keys such as `strategy` take the second
    form for the target too, so they never reach the other stages. The stages are the shipped
    ones plus those in `config_dirs`."""
    from chimed_lit.run.registry import stage_names
    from chimed_lit.run.run_wide import is_run_wide

    stages = set(stage_names(config_dirs))
    for o in overrides:
        if o.startswith("stage="):
            target = o.split("=", 1)[1]
    target = target or default_stage()
    out = []
    for o in overrides:
        head, dot, rest = override_key(o).partition(".")
        if head not in stages or not dot:
            out.append(Override(o, o))
            continue
        if head == target and not is_run_wide(rest):
            local = Override(o, o, head).local
            out.append(Override(o, local, head))
        else:  # ++: a recipe may already set that stage's key
            value = o.split("=", 1)[1] if "=" in o else ""
            out.append(Override(o, f"++stage_overrides.{head}.{rest}={value}", head, True))
    return out


def routed_texts(overrides: list[str], target: str | None = None) -> list[str]:
    """`route_stage_prefixes` as the plain texts Hydra gets (for composing stages directly)."""
    return [o.text for o in route_stage_prefixes(overrides, target)]


def split_argv(args: list[str], stages: bool = False, target: str | None = None) -> CommandLine:
    """Split `args`; with `stages` (commands over `fit.yaml`), route stage prefixes too."""
    flags, rest = split_flags(args)
    if stages:
        return CommandLine(flags, route_stage_prefixes(rest, target, config_dirs(flags)))
    return CommandLine(flags, [Override(o, o) for o in rest])
