"""Weighted composition of rewards: which ones a run optimises, built once, scored per batch.

`stage.reward` names them: one name (`mcq`), a `+`-joined string (`mcq+format`), a list
(`[mcq, format]`, weight 1 each) or a mapping of weights (`{mcq: 1.0, format: 0.2}`). A weight of
0 keeps a component scored and logged but out of the total (a reward to watch, not to train on).
`stage.reward_options` carries each reward's keyword options (`{length: {max_chars: 200}}`),
checked against what the reward takes when the set is built, so a typo fails before training.

`parse_spec` and `needs_reward_model` import no torch: the run layer calls them to decide
whether the reward stage runs. `RewardSet` returns the weighted total and every component's raw
value, so the module can log each as `rlhf/reward/<name>`.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chimed_lit.io.errors import ConfigError
from chimed_lit.rewards.base import Record, RewardNotApplicable, task_of

PURE = ("mcq", "ner", "format", "length", "repetition")  # score(record, response, **options)
BATCH = ("reward_model", "judge")  # make(**options, reward_model=, tokenizer=, template=)
KNOWN = PURE + BATCH
_BUILD_ARGS = ("reward_model", "tokenizer", "template")

Scorer = Callable[[Sequence[Record], Sequence[str]], list[float]]


def _unknown(name: Any, key: str) -> str:
    return f"{key}: unknown reward {name!r}; known rewards: {', '.join(KNOWN)}"


def parse_spec(spec: Any, key: str = "stage.reward") -> dict[str, float]:
    """Reward name -> weight, in the order given (see the module for the accepted shapes)."""
    if isinstance(spec, str):
        names = [part.strip() for part in spec.split("+")]
        pairs: list[tuple[Any, Any]] = [(n, 1.0) for n in names]
    elif isinstance(spec, Mapping):
        pairs = list(spec.items())
    elif isinstance(spec, Sequence) and not isinstance(spec, bytes):
        pairs = [(n, 1.0) for n in spec]
    else:
        raise ConfigError(f"{key}={spec!r}: name a reward, e.g. mcq, mcq+format or {{mcq: 1.0}}")
    if not pairs:
        raise ConfigError(f"{key} is empty: name at least one reward ({', '.join(KNOWN)})")
    weights: dict[str, float] = {}
    problems = []
    for name, weight in pairs:
        if not isinstance(name, str) or name not in KNOWN:
            problems.append(_unknown(name, key))
            continue
        if name in weights:
            problems.append(f"{key}: {name} is named twice")
            continue
        try:
            if isinstance(weight, bool):
                raise ValueError
            value = float(weight)
        except (TypeError, ValueError):
            problems.append(f"{key}.{name}={weight!r}: a weight must be a number")
            continue
        if not math.isfinite(value):
            problems.append(f"{key}.{name}={weight!r}: a weight must be finite")
            continue
        weights[name] = value
    if problems:
        raise ConfigError(problems)
    return weights


def needs_reward_model(spec: Any) -> bool:
    """Whether the spec uses the learned reward model (so the reward stage must run)."""
    return "reward_model" in parse_spec(spec)


@dataclass(frozen=True)
class Component:
    name: str
    weight: float
    scorer: Scorer


class RewardSet:
    """Scores `(records, responses)`: the weighted total [N] (float32) and each component's
    raw value [N] by name."""

    def __init__(self, components: Sequence[Component]):
        self.components = list(components)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.components]

    @property
    def weights(self) -> dict[str, float]:
        return {c.name: c.weight for c in self.components}

    def __call__(
        self, records: Sequence[Record], responses: Sequence[str]
    ) -> tuple[Any, dict[str, Any]]:
        import torch

        if len(records) != len(responses):
            raise ValueError(f"{len(records)} records but {len(responses)} responses")
        total = torch.zeros(len(responses), dtype=torch.float32)
        parts: dict[str, torch.Tensor] = {}
        for c in self.components:
            values = torch.tensor(c.scorer(records, responses), dtype=torch.float32)
            if values.shape != total.shape:
                raise ValueError(
                    f"reward {c.name} gave {values.numel()} values for {len(responses)} responses"
                )
            parts[c.name] = values
            total += c.weight * values
        return total, parts


def _accepted(fn: Callable[..., Any], skip: int) -> list[str]:
    """Keyword options `fn` takes (its first `skip` positional parameters are not options)."""
    params = list(inspect.signature(fn).parameters.values())[skip:]
    return [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _options(name: str, given: Mapping[str, Any], accepted: list[str], key: str) -> dict[str, Any]:
    unknown = [k for k in given if k not in accepted]
    if unknown:
        takes = ", ".join(accepted) or "no options"
        raise ConfigError(
            [f"{key}.{name}.{k}: {name} has no such option (it takes: {takes})" for k in unknown]
        )
    return dict(given)


def _pure(name: str, module: Any, options: dict[str, Any]) -> Scorer:
    def scorer(records: Sequence[Record], responses: Sequence[str]) -> list[float]:
        out = []
        for record, response in zip(records, responses, strict=True):
            try:
                out.append(float(module.score(record, response, **options)))
            except RewardNotApplicable as e:
                raise ConfigError(
                    f"stage.reward includes {name}, which cannot score a {task_of(record)} "
                    f"prompt: {e}. Drop {name} from stage.reward, or train on prompts it scores"
                ) from None
        return out

    return scorer


def _checked_options(name: str, module: Any, given: Mapping[str, Any], key: str) -> dict[str, Any]:
    """`given` options of reward `name`, checked against what it takes (and its own
    `problems`, for pure rewards that have one)."""
    if name in PURE:
        opts = _options(name, given, _accepted(module.score, 2), key)
        check = getattr(module, "problems", None)
        if check is not None and check(**opts):
            raise ConfigError([f"{key}.{p}" for p in check(**opts)])
        return opts
    accepted = [a for a in _accepted(module.make, 0) if a not in _BUILD_ARGS]
    return _options(name, given, accepted, key)


def option_problems(
    spec: Any, options: Mapping[str, Mapping[str, Any]] | None, key: str = "stage.reward_options"
) -> list[str]:
    """Every problem of `spec` and its `options`, without building anything (the preflight's
    check, so a typo fails before the stages before RL train)."""
    try:
        weights = parse_spec(spec)
    except ConfigError as e:
        return e.problems
    options = dict(options or {})
    problems = [_unknown(n, key) for n in options if n not in KNOWN]
    for name in weights:
        module = importlib.import_module(f"chimed_lit.rewards.{name}")
        try:
            _checked_options(name, module, dict(options.get(name) or {}), key)
        except ConfigError as e:
            problems += e.problems
    return problems


def build_rewards(
    spec: Any,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    reward_model: Any = None,
    tokenizer: Any = None,
    template: str = "chimed",
    key: str = "stage.reward_options",
) -> RewardSet:
    """The `RewardSet` for `spec`, each reward built with its `options`. Options for a reward
    that is not in `spec` are ignored (one options block can serve several specs); options
    under a name that is no reward are an error."""
    weights = parse_spec(spec)
    options = dict(options or {})
    problems = [_unknown(n, key) for n in options if n not in KNOWN]
    if problems:
        raise ConfigError(problems)
    components = []
    for name, weight in weights.items():
        module = importlib.import_module(f"chimed_lit.rewards.{name}")
        opts = _checked_options(name, module, dict(options.get(name) or {}), key)
        if name in PURE:
            scorer = _pure(name, module, opts)
        else:
            scorer = module.make(
                **opts, reward_model=reward_model, tokenizer=tokenizer, template=template
            )
        components.append(Component(name, weight, scorer))
    return RewardSet(components)
