"""`inference.server`: a real OpenAI-compatible endpoint over the tiny model, and its errors."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from chimed_lit.chat.render import render_prompt
from chimed_lit.inference.generation import Sampling, generate
from chimed_lit.inference.server import ChatServer, serve

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def post(url: str, body: object, path: str = "/v1/chat/completions") -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data, {"Content-Type": "application/json"})
    try:
        with NO_PROXY.open(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_serves_the_tiny_model_through_the_renderer_and_generate(tiny_lm, demo_tok) -> None:
    messages = [{"role": "user", "content": "头痛怎么办？"}]
    direct = generate(
        tiny_lm, demo_tok, [render_prompt(demo_tok, messages)], Sampling(max_new_tokens=6)
    )[0]
    with serve(tiny_lm, demo_tok) as server:
        assert server.url.startswith("http://127.0.0.1:") and server.port > 0
        status, out = post(server.url, {"model": "tiny", "messages": messages, "max_tokens": 6})
        assert status == 200
        assert out["object"] == "chat.completion" and out["model"] == "tiny"
        choice = out["choices"][0]
        assert choice["message"] == {"role": "assistant", "content": direct["text"]}
        assert choice["finish_reason"] == ("stop" if direct["finished"] else "length")
        with NO_PROXY.open(server.url + "/v1/models", timeout=10) as resp:
            assert json.loads(resp.read())["data"][0]["id"] == "chimed-lit"
        assert server.requests == 1
    with pytest.raises(urllib.error.URLError):  # closed: nothing listens any more
        NO_PROXY.open(server.url + "/v1/models", timeout=2)


def test_bad_requests_and_a_failing_responder() -> None:
    def respond(messages, body):
        if messages[-1]["content"] == "boom":
            raise RuntimeError("responder broke")
        return "好的"

    with ChatServer(respond) as server:
        ok = {"messages": [{"role": "user", "content": "hi"}]}
        assert post(server.url, b"{not json")[0] == 400
        assert post(server.url, {"messages": []})[0] == 400
        assert post(server.url, {**ok, "stream": True}) == (
            400,
            {
                "error": {
                    "message": "`stream` is not supported by this server",
                    "type": "invalid_request_error",
                }
            },
        )
        assert post(server.url, {**ok, "n": 2})[0] == 400
        assert post(server.url, ok, path="/v1/completions")[0] == 404
        status, out = post(server.url, {"messages": [{"role": "user", "content": "boom"}]})
        assert status == 500 and "responder broke" in out["error"]["message"]
        status, out = post(server.url, ok)  # still serving after a failure
        assert status == 200 and out["choices"][0]["message"]["content"] == "好的"
