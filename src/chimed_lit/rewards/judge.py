"""`judge`: a score from any OpenAI-compatible chat endpoint, given a rubric, mapped to [0, 1].

Each (prompt record, response) becomes one user message, the `rubric` with `{question}`,
`{response}` and `{reference}` filled in (the reference: the free record's reference answer,
the MCQ's correct options, the NER gold lines), sent to `POST <url>/v1/chat/completions`. The
reply's last score statement (`评分：7`, `得分：8分`, `score: 7/10`) is divided by its stated
maximum (or `max_score`) and clipped to [0, 1].

What a judge in a training loop needs:
- a `timeout` per request and `retries` with exponential `backoff` (connection errors, time
  outs, HTTP 429 and 5xx are retried; other HTTP errors and replies without a score are not:
  asking again would get the same answer);
- `concurrency` requests in flight at once (a thread pool), and identical prompts in a batch
  (a group whose samples agree) asked once;
- a cache keyed by (model, prompt): in memory, and on disk with `cache_dir` (one JSON file per
  key, written atomically), so a resumed run does not pay for the same verdicts again;
- on a call that still fails, `on_error: raise` (default) stops with a `JudgeError` naming the
  endpoint and the cause; `on_error: zero` scores it 0 and counts it (`failures`).
Requests go through stdlib `urllib`; loopback endpoints bypass any proxy of the environment.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from chimed_lit.io.atomic import write_json
from chimed_lit.io.errors import ChimedError, ConfigError
from chimed_lit.rewards.base import Record, question_of, task_of

log = logging.getLogger(__name__)

DEFAULT_RUBRIC = (
    "你是一名资深医学专家，负责评审医学问答的回答质量。请对照参考答案，从医学准确性、完整性、"
    "安全性和表达清晰度评价下面的回答，给出0到10的整数分（10分最好）。\n"
    "问题：{question}\n参考答案：{reference}\n回答：{response}\n"
    "先简要说明理由，最后一行只写“评分：X”（X为0到10的整数）。"
)
_FIELDS = re.compile(r"\{(question|response|reference)\}")
_SCORE = re.compile(
    r"(?:评分|得分|分数|打分|总分|score|rating)\s*(?:为|是|is)?\s*[：:=]?[\s*]*"
    r"(-?\d+(?:\.\d+)?)\s*分?\s*(?:(?:/|／|out of)\s*(\d+(?:\.\d+)?))?",
    re.IGNORECASE,
)
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class JudgeError(ChimedError):
    """The judge endpoint gave no usable verdict (after its retries)."""


def parse_score(text: str, max_score: float = 10.0) -> float | None:
    """The last score statement of `text` in [0, 1] (`评分：7` -> 0.7, `score: 3/5` -> 0.6),
    or None when there is none."""
    found = list(_SCORE.finditer(text or ""))
    if not found:
        return None
    value, top = found[-1].group(1), found[-1].group(2)
    denominator = float(top) if top else float(max_score)
    if denominator <= 0:
        return None
    return min(1.0, max(0.0, float(value) / denominator))


def reference_of(record: Record) -> str:
    """What the rubric's `{reference}` shows for this record."""
    gold = record.get("gold") or {}
    task = task_of(record)
    if task == "mcq":
        options = gold.get("options") or {}
        answers = gold.get("answers") or []
        return "；".join(f"{a}. {options[a]}" if a in options else str(a) for a in answers)
    if task == "ner":
        names = {
            code: name for name, code in (gold.get("type_names") or {}).items() if name != code
        }
        lines = [f"{s}：{names.get(c, c)}" for s, c in gold.get("entities") or []]
        return "\n".join(lines) or "无"
    return str(gold.get("reference") or "（无参考答案）")


def fill(rubric: str, record: Record, response: str) -> str:
    """The rubric with its fields filled in one pass (a field's text is never re-read, so a
    response that writes `{reference}` cannot pull the reference into its own verdict)."""
    values = {
        "question": question_of(record),
        "response": response,
        "reference": reference_of(record),
    }
    return _FIELDS.sub(lambda m: values[m.group(1)], rubric)


def endpoint_of(url: str) -> str:
    """`http://host:port`, `.../v1` or the full `.../v1/chat/completions` -> the full URL."""
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    return url + ("/chat/completions" if url.endswith("/v1") else "/v1/chat/completions")


class _Retryable(Exception):
    pass


class Judge:
    """Called on lists of records and responses: one score in [0, 1] per response."""

    def __init__(
        self,
        url: str,
        model: str,
        rubric: str = DEFAULT_RUBRIC,
        timeout: float = 60.0,
        retries: int = 2,
        backoff: float = 1.0,
        concurrency: int = 8,
        cache_dir: str | None = None,
        on_error: str = "raise",
        max_tokens: int = 512,
        temperature: float = 0.0,
        max_score: float = 10.0,
        api_key: str | None = None,
    ):
        self.endpoint, self.model, self.rubric = endpoint_of(url), model, rubric
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.concurrency, self.on_error = concurrency, on_error
        self.max_tokens, self.temperature, self.max_score = max_tokens, temperature, max_score
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        host = urllib.parse.urlsplit(self.endpoint).hostname or ""
        handlers = [urllib.request.ProxyHandler({})] if host in _LOOPBACK else []
        self._opener = urllib.request.build_opener(*handlers)
        self._memory: dict[str, str] = {}
        self._lock = threading.Lock()
        self.requests = self.cache_hits = self.failures = 0

    # ----- the cache: (model, prompt) -> reply text ------------------------------------------
    def _key(self, prompt: str) -> str:
        raw = json.dumps([self.model, prompt], ensure_ascii=False)
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()

    def _cached(self, prompt: str) -> str | None:
        key = self._key(prompt)
        with self._lock:
            if key in self._memory:
                return self._memory[key]
        if self.cache_dir is not None:
            path = self.cache_dir / f"{key}.json"
            try:
                entry = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
            if entry.get("model") == self.model and entry.get("prompt") == prompt:
                with self._lock:
                    self._memory[key] = entry["reply"]
                return entry["reply"]
        return None

    def _store(self, prompt: str, reply: str) -> None:
        key = self._key(prompt)
        with self._lock:
            self._memory[key] = reply
        if self.cache_dir is not None:
            write_json(
                self.cache_dir / f"{key}.json",
                {"model": self.model, "prompt": prompt, "reply": reply},
            )

    # ----- one request, then the retries ------------------------------------------------------
    def _request(self, prompt: str) -> str:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        req = urllib.request.Request(
            self.endpoint, json.dumps(body, ensure_ascii=False).encode("utf-8"), self._headers
        )
        with self._lock:
            self.requests += 1
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", "replace")[:300]
            if e.code == 429 or e.code >= 500:
                raise _Retryable(f"HTTP {e.code}: {detail}") from None
            raise JudgeError(
                f"judge {self.endpoint} refused the request: HTTP {e.code}: {detail}"
            ) from None
        except TimeoutError:
            raise _Retryable(f"timed out after {self.timeout:g} s") from None
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, TimeoutError):
                raise _Retryable(f"timed out after {self.timeout:g} s") from None
            raise _Retryable(f"cannot connect: {reason}") from None
        except (OSError, http.client.HTTPException) as e:  # reset, disconnected, cut short
            raise _Retryable(f"{type(e).__name__}: {e}") from None
        try:
            return json.loads(payload)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise JudgeError(
                f"judge {self.endpoint} answered something that is not a chat completion: "
                f"{payload[:300]!r}"
            ) from None

    def _ask(self, prompt: str) -> str:
        """The reply to `prompt`: from the cache, else the endpoint (with retries), then cached."""
        cached = self._cached(prompt)
        if cached is not None:
            with self._lock:
                self.cache_hits += 1
            return cached
        attempts = 1 + self.retries
        for attempt in range(attempts):
            try:
                reply = self._request(prompt)
            except _Retryable as e:
                if attempt + 1 == attempts:
                    raise JudgeError(
                        f"judge {self.endpoint}: no answer after {attempts} attempt(s), the "
                        f"last: {e}. Check the endpoint, raise judge.timeout or judge.retries, "
                        "or set judge.on_error=zero to score failed calls 0"
                    ) from None
                time.sleep(self.backoff * 2**attempt)
            else:
                self._store(prompt, reply)
                return reply
        raise AssertionError("unreachable")

    def _score(self, prompt: str) -> float | None:
        """The verdict in [0, 1], or None for a failure counted as 0 (`on_error=zero`)."""
        try:
            reply = self._ask(prompt)
            value = parse_score(reply, self.max_score)
            if value is None:
                raise JudgeError(f"judge {self.endpoint} replied without a score: {reply[-300:]!r}")
        except JudgeError:
            if self.on_error != "zero":
                raise
            with self._lock:
                self.failures += 1
            return None
        return value

    def __call__(self, records: Sequence[Record], responses: Sequence[str]) -> list[float]:
        prompts = [fill(self.rubric, r, s) for r, s in zip(records, responses, strict=True)]
        unique = list(dict.fromkeys(prompts))  # a group's identical samples: asked once
        before = self.failures
        workers = max(1, min(self.concurrency, len(unique)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="judge") as pool:
            verdicts = dict(zip(unique, pool.map(self._score, unique), strict=True))
        if self.failures > before:
            log.warning(
                "judge %s: %d of %d calls failed and scored 0 (judge.on_error=zero); %d so far",
                self.endpoint,
                self.failures - before,
                len(unique),
                self.failures,
            )
        return [verdicts[p] or 0.0 for p in prompts]


def make(
    *,
    url: str | None = None,
    model: str | None = None,
    rubric: str | None = None,
    timeout: float = 60.0,
    retries: int = 2,
    backoff: float = 1.0,
    concurrency: int = 8,
    cache_dir: str | None = None,
    on_error: str = "raise",
    max_tokens: int = 512,
    temperature: float = 0.0,
    max_score: float = 10.0,
    api_key_env: str | None = None,
    reward_model: Any = None,
    tokenizer: Any = None,
    template: str = "chimed",
) -> Judge:
    """The `judge` reward (`reward_model`, `tokenizer`, `template` are not used: a judge is
    an endpoint). `api_key_env` names the environment variable holding the endpoint's key."""
    problems = []
    if not url:
        problems.append("the judge reward needs judge.url, an OpenAI-compatible endpoint")
    if not model:
        problems.append("the judge reward needs judge.model, the model name the endpoint serves")
    rubric = DEFAULT_RUBRIC if rubric is None else rubric
    if "{response}" not in rubric:
        problems.append("judge.rubric must contain {response} (also {question}, {reference})")
    if on_error not in ("raise", "zero"):
        problems.append(f"judge.on_error={on_error!r}: use raise or zero")
    if timeout <= 0 or retries < 0 or backoff < 0 or concurrency < 1:
        problems.append("judge.timeout must be > 0, retries and backoff >= 0, concurrency >= 1")
    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            problems.append(
                f"judge.api_key_env={api_key_env}: that environment variable is not set"
            )
    if problems:
        raise ConfigError(problems)
    return Judge(
        str(url),
        str(model),
        rubric,
        float(timeout),
        int(retries),
        float(backoff),
        int(concurrency),
        cache_dir,
        on_error,
        int(max_tokens),
        float(temperature),
        float(max_score),
        api_key,
    )
