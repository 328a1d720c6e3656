"""`judge` against a real local server: the tiny model's, and the same server class answering
from a small function (deterministic verdicts, delays, failures) — never a mock of the client."""

from __future__ import annotations

import re
import threading
import time

import pytest

from chimed_lit.chat.render import render_prompt
from chimed_lit.inference.generation import Sampling, generate
from chimed_lit.inference.server import ChatServer, serve
from chimed_lit.io.errors import ConfigError
from chimed_lit.rewards import judge
from chimed_lit.rewards.compose import build_rewards
from tests.rewards import records


def verdict_by_length(messages, body) -> str:
    """A judge that gives the response's length (capped at 10) as its score, after a reason."""
    response = re.search(r"回答：(.*)\n先简要说明理由", messages[-1]["content"], re.S).group(1)
    return f"回答共{len(response)}字。\n评分：{min(10, len(response))}"


@pytest.fixture
def server():
    with ChatServer(verdict_by_length) as s:
        yield s


def fast(url: str, **opts) -> judge.Judge:
    return judge.make(
        **{"url": url, "model": "judge-m", "timeout": 5.0, "retries": 1, "backoff": 0.01, **opts}
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("评分：7", 0.7),
        ("score: 7/10", 0.7),
        ("Score: 3 / 5", 0.6),
        ("**评分：9**", 0.9),
        ("得分：8分", 0.8),
        ("评分：12", 1.0),  # clipped
        ("理由……初步评分：3。再看一遍，最终评分：8", 0.8),  # the last statement
        ("rating = 4.5 out of 5", 0.9),
        ("回答很好", None),
    ],
)
def test_parse_score(text: str, value: float | None) -> None:
    assert judge.parse_score(text) == (pytest.approx(value) if value is not None else None)


def test_rubric_fields_and_endpoint() -> None:
    rec = records.mcq("C")
    prompt = judge.fill("Q={question}|R={response}|G={reference}", rec, "猜{reference}")
    assert prompt.endswith(
        "|R=猜{reference}|G=C. 出血量"
    )  # a response cannot pull in the reference
    assert judge.reference_of(records.ner([("头痛", "sym")])) == "头痛：临床表现"
    assert judge.reference_of(records.free("低盐饮食")) == "低盐饮食"
    for url in ("http://h:1", "http://h:1/", "http://h:1/v1", "http://h:1/v1/chat/completions"):
        assert judge.endpoint_of(url) == "http://h:1/v1/chat/completions"


def test_scores_in_order_and_cache_avoids_requests(server, tmp_path) -> None:
    recs = [records.free()] * 4
    responses = ["少盐", "少盐少油多运动", "少盐", "规律服药"]
    j = fast(server.url, cache_dir=str(tmp_path / "cache"))
    assert j(recs, responses) == pytest.approx([0.2, 0.7, 0.2, 0.4])
    assert server.requests == 3  # the duplicate asked once
    assert j(recs, responses) == pytest.approx([0.2, 0.7, 0.2, 0.4])
    assert server.requests == 3 and j.cache_hits == 3  # the second batch: all from the cache
    again = fast(server.url, cache_dir=str(tmp_path / "cache"))  # a resumed run: from disk
    assert again(recs[:1], ["少盐少油多运动"]) == pytest.approx([0.7])
    assert server.requests == 3
    other = fast(server.url, model="another-judge", cache_dir=str(tmp_path / "cache"))
    other(recs[:1], ["少盐少油多运动"])  # the key holds the model: a new verdict
    assert server.requests == 4


def test_timeout_retries_then_a_clear_error() -> None:
    def slow(messages, body):
        time.sleep(1.5)
        return "评分：5"

    with ChatServer(slow) as s:
        j = judge.make(url=s.url, model="m", timeout=0.3, retries=1, backoff=0.05)
        t0 = time.perf_counter()
        with pytest.raises(judge.JudgeError) as err:
            j([records.free()], ["少盐"])
        assert time.perf_counter() - t0 < 1.4  # gave up on its timeout, not the server's pace
        assert s.requests == 2  # the first try and one retry
        message = str(err.value)
        assert "no answer after 2 attempt(s)" in message and "timed out after 0.3 s" in message
        assert s.url in message and "on_error=zero" in message


def test_on_error_zero_counts_failures() -> None:
    def flaky(messages, body):
        if "坏" in messages[-1]["content"]:
            raise RuntimeError("overloaded")  # -> HTTP 500, retried
        if "乱" in messages[-1]["content"]:
            return "我拒绝评分"  # no score: not retried
        return "评分：6"

    with ChatServer(flaky) as s:
        recs = [records.free()] * 3
        strict = fast(s.url)
        with pytest.raises(judge.JudgeError, match="HTTP 500"):
            strict(recs[:1], ["坏"])
        assert s.requests == 2
        with pytest.raises(judge.JudgeError, match="replied without a score"):
            strict(recs[:1], ["乱"])
        assert s.requests == 3
        lenient = fast(s.url, on_error="zero")
        assert lenient(recs, ["坏", "好", "乱"]) == [0.0, 0.6, 0.0]
        assert lenient.failures == 2


def test_requests_overlap_up_to_concurrency() -> None:
    def slow(messages, body):
        time.sleep(0.3)
        return "评分：5"

    with ChatServer(slow) as s:
        recs = [records.free()] * 6
        answers = [f"回答{i}" for i in range(6)]
        t0 = time.perf_counter()
        assert judge.make(url=s.url, model="m", concurrency=6)(recs, answers) == [0.5] * 6
        assert time.perf_counter() - t0 < 1.2  # serially: 1.8 s
        assert s.max_in_flight >= 3
    with ChatServer(slow) as s:
        judge.make(url=s.url, model="m", concurrency=1)(recs[:3], answers[:3])
        assert s.max_in_flight == 1


def test_unreachable_and_refused_endpoints() -> None:
    with ChatServer(verdict_by_length) as s:
        url = s.url
        t0 = time.perf_counter()
        with pytest.raises(judge.JudgeError, match="refused the request: HTTP 404"):
            judge.make(url=url + "/nope/chat/completions", model="m", backoff=5.0)(
                [records.free()], ["x"]
            )
        assert time.perf_counter() - t0 < 2.0  # a 404 is not retried
    with pytest.raises(judge.JudgeError, match="cannot connect"):
        fast(url)([records.free()], ["x"])


def test_make_checks_its_options(monkeypatch) -> None:
    with pytest.raises(ConfigError, match="judge.model"):
        judge.make(url="http://127.0.0.1:1")
    with pytest.raises(ConfigError, match="must contain"):
        judge.make(url="http://127.0.0.1:1", model="m", rubric="评分这个：{question}")
    with pytest.raises(ConfigError, match="on_error='skip'"):
        judge.make(url="http://127.0.0.1:1", model="m", on_error="skip")
    monkeypatch.delenv("CHIMED_TEST_JUDGE_KEY", raising=False)
    with pytest.raises(ConfigError, match="CHIMED_TEST_JUDGE_KEY"):
        judge.make(url="http://127.0.0.1:1", model="m", api_key_env="CHIMED_TEST_JUDGE_KEY")


def test_judge_served_by_the_tiny_model(tiny_lm, demo_tok) -> None:
    """End to end on the project's own server: the verdict is the tiny model's greedy reply to
    the rubric prompt, parsed (a random model gives no score: a counted 0)."""
    recs = [records.mcq("C"), records.free("低盐饮食")]
    responses = ["C", "少盐"]
    with serve(tiny_lm, demo_tok) as s:
        rewards = build_rewards(
            {"judge": 1.0},
            {"judge": {"url": s.url, "model": "tiny", "max_tokens": 6, "on_error": "zero"}},
        )
        total, parts = rewards(recs, responses)
        assert s.requests == 2
    expected = []
    for rec, response in zip(recs, responses, strict=True):
        prompt = judge.fill(judge.DEFAULT_RUBRIC, rec, response)
        ids = render_prompt(demo_tok, [{"role": "user", "content": prompt}])
        reply = generate(tiny_lm, demo_tok, [ids], Sampling(max_new_tokens=6))[0]["text"]
        expected.append(judge.parse_score(reply) or 0.0)
    assert parts["judge"].tolist() == pytest.approx(expected)
    assert total.tolist() == pytest.approx(expected)
    (component,) = rewards.components
    assert component.scorer.failures == sum(1 for e in expected if e == 0.0)
    assert threading.active_count() < 50
