"""The one place a conversation becomes text and token ids: training (SFT, preference, PPO and
rejection-sampling prompts), generation and chat, and evaluation all render through here.

Templates: `chimed` and `ziya` (the Jinja strings of `chimed_lit.chat.templates`) or `tokenizer`
(the tokenizer's own `chat_template`, e.g. ChatML or Llama-3). Rendering goes through
`tokenizer.apply_chat_template`, so the ids are exactly those a user (or `generate`) gets from it.

Which tokens are the assistant's: character spans of the rendered string, mapped onto the
tokens through the tokenizer's offsets. The spans come from rendering prefixes of the
conversation: turn k (an assistant message at index i) starts where
`render(messages[:i], add_generation_prompt=True)` ends (so the role header such as `[bot]:` is
prompt) and ends where `render(messages[:i + 1])` ends, trailing whitespace excluded (so the
EOS or end-of-turn token, e.g. `</s>` or `<|im_end|>`, is a target and ChatML's newline after
it is not). Why characters and not token-prefix diffs: the string is tokenized once, whole, and
the spans are read off that single tokenization. Tokenizing prefixes separately is not exact
with byte-level BPE, whose merges can differ at a cut (a CJK character is several byte tokens
that may merge across it); offsets give every byte token of a character that character's span,
so they are never split between prompt and target. A token that straddles a boundary (merged
across the end of `[bot]:` and the start of the answer) counts as a target: every answer
character is learned; transformers' own `{% generation %}` masks use the same overlap rule.
Prefix rendering assumes a template renders earlier turns the same whatever follows; that is
checked, and a template that rewrites history (e.g. dropping old reasoning) is refused.

The prompt a model answers is that same head: `prompt_text(context)` is
`render(context, add_generation_prompt=True)`, the text training puts before the reply to
`context`; generation (`render_prompt`) and evaluation (`prompt_renderer`) use it, so all three
agree on every shape (consecutive same-role turns, a system message, empty content).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chimed_lit.chat.templates import TEMPLATES
from chimed_lit.io.errors import ConfigError

TEMPLATE_CHOICES = (*TEMPLATES, "tokenizer")

Message = dict[str, str]
Render = Callable[[Sequence[Message]], str]


@dataclass(frozen=True)
class Rendered:
    """Token ids of a conversation; `turn_ids[t]` is k when token t belongs to the k-th
    assistant turn (its content and end-of-turn token), -1 for prompt tokens; `turn_ends[k]` is
    the number of tokens up to the end of assistant turn k (a clean place to cut)."""

    input_ids: list[int]
    turn_ids: list[int]
    turn_ends: list[int]

    @property
    def assistant_mask(self) -> list[bool]:
        return [k >= 0 for k in self.turn_ids]


def resolve_template(tokenizer: Any, template: str = "chimed", key: str = "data.template") -> str:
    """The Jinja string for `template` (`chimed`, `ziya` or `tokenizer`); `key` names the
    setting that chose it in the error a bad choice raises."""
    if template in TEMPLATES:
        return TEMPLATES[template]
    if template == "tokenizer":
        own = getattr(tokenizer, "chat_template", None)
        if not own:
            raise ConfigError(
                f"{key}=tokenizer but the tokenizer has no chat_template; use {key}=chimed or ziya"
            )
        return own
    raise ConfigError(
        f"{key}={template!r}: unknown chat template; choose one of {', '.join(TEMPLATE_CHOICES)}"
    )


def render_text(
    tokenizer: Any,
    messages: list[dict[str, str]],
    template: str = "chimed",
    add_generation_prompt: bool = False,
) -> str:
    """The rendered string (what `render_tokens` tokenizes)."""
    return tokenizer.apply_chat_template(
        messages,
        chat_template=resolve_template(tokenizer, template),
        add_generation_prompt=add_generation_prompt,
        tokenize=False,
    )


def render_tokens(
    tokenizer: Any,
    messages: list[dict[str, str]],
    template: str = "chimed",
    add_generation_prompt: bool = False,
) -> Rendered:
    """Ids equal to `apply_chat_template(messages, tokenize=True, ...)` with the chosen template,
    and which of them are assistant tokens (see the module docstring for the rule)."""
    chat_template = resolve_template(tokenizer, template)
    full = render_text(tokenizer, messages, template, add_generation_prompt)
    spans = _assistant_spans(tokenizer, messages, template, full)
    try:
        enc = tokenizer.apply_chat_template(
            messages,
            chat_template=chat_template,
            add_generation_prompt=add_generation_prompt,
            tokenize=True,
            return_dict=True,
            tokenizer_kwargs={"return_offsets_mapping": True},
        )
    except NotImplementedError as e:  # slow (Python) tokenizers have no offsets
        raise ConfigError(f"assistant masks need a fast tokenizer with offsets ({e})") from None
    ids, offsets = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    turn_ids = [-1] * len(ids)
    turn_ends = []
    t = 0
    for k, (start, end) in enumerate(spans):
        while t < len(ids) and offsets[t][1] <= start:  # tokens wholly before the span
            t += 1
        while t < len(ids) and offsets[t][0] < end:  # tokens overlapping it
            turn_ids[t] = k
            t += 1
        turn_ends.append(t)
    return Rendered(ids, turn_ids, turn_ends)


def prompt_text(tokenizer: Any, context: Sequence[Message], template: str = "chimed") -> str:
    """What the model reads before its reply to `context`, e.g. `...[human]:q\\n[bot]:`: the
    text training renders before an assistant turn that follows `context` (every turn of
    `context` kept as it is, a trailing assistant turn included)."""
    return render_text(tokenizer, list(context), template, add_generation_prompt=True)


def render_prompt(
    tokenizer: Any, messages: Sequence[Message], template: str = "chimed"
) -> list[int]:
    """Inference input ids: `prompt_text` of the conversation before its last assistant turn
    (dropped if present, e.g. a reference answer), tokenized as `apply_chat_template` does."""
    messages = list(messages)
    if messages and messages[-1]["role"] == "assistant":
        messages = messages[:-1]
    text = prompt_text(tokenizer, messages, template)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def prompt_renderer(tokenizer: Any, template: str = "chimed", key: str = "data.template") -> Render:
    """`context -> prompt_text(context)` for one tokenizer and template, checked now (a bad
    `template` raises a `ConfigError` naming `key` before anything runs)."""
    resolve_template(tokenizer, template, key)

    def render(context: Sequence[Message]) -> str:
        return prompt_text(tokenizer, context, template)

    return render


def _assistant_spans(
    tokenizer: Any, messages: list[dict[str, str]], template: str, full: str
) -> list[tuple[int, int]]:
    """Character spans of each assistant turn in `full`, from renderings of prefixes."""
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        if i == 0:
            raise ValueError("an assistant turn needs a turn before it to be rendered as a reply")
        head = prompt_text(tokenizer, messages[:i], template)
        block = render_text(tokenizer, messages[: i + 1], template)
        if not (block.startswith(head) and full.startswith(block)):
            raise ConfigError(
                f"chat template {template!r} renders a conversation differently "
                "depending on the turns after it, so assistant tokens cannot be "
                "located; use data.template=chimed or ziya"
            )
        spans.append((len(head), len(block.rstrip())))
    return spans
