"""A small OpenAI-compatible chat-completions server: a local model as a judge endpoint.

`serve(model, tokenizer)` answers `POST /v1/chat/completions` by rendering the request's
messages with the one renderer (`chat.render.render_prompt`, the text the model was trained on)
and generating with `inference.generation.generate` (greedy unless `temperature` > 0); it lists
itself at `GET /v1/models`. It binds 127.0.0.1 on a free port by default, one thread per
request (stdlib `ThreadingHTTPServer`), generation serialised by a lock (one model, one
forward at a time). `ChatServer` takes any `responder` (messages, request -> reply text): the
model's, or a plain function, which serves deterministic replies over the same real HTTP path
(how the judge's client is tested). The server counts the completions asked of it and the most
it served at once, which is what a client's cache and concurrency are checked by.

Not supported (answered 400): `stream`, `n` > 1. Errors come back as OpenAI's
`{"error": {"message", "type"}}`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Message = dict[str, str]
# messages, the whole request body -> the reply text, or {"content", "finish_reason"}
Responder = Callable[[list[Message], Mapping[str, Any]], "str | Mapping[str, str]"]


class _BadRequest(ValueError):
    pass


class ChatServer:
    """An OpenAI-compatible endpoint on `host:port` (port 0: a free one) answered by
    `responder`; `url` is its base (`http://127.0.0.1:PORT`), `close()` stops it."""

    def __init__(
        self,
        responder: Responder,
        host: str = "127.0.0.1",
        port: int = 0,
        model_name: str = "chimed-lit",
    ):
        self.responder, self.model_name = responder, model_name
        self.requests = 0  # chat completions asked for
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), _handler(self))
        self._httpd.daemon_threads = True
        self.host, self.port = self._httpd.server_address[:2]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self) -> ChatServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def complete(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The chat.completion object for one request body (raises `_BadRequest`)."""
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _BadRequest("`messages` must be a non-empty list")
        for m in messages:
            if not isinstance(m, dict) or not isinstance(m.get("content"), str) or "role" not in m:
                raise _BadRequest("each message needs a `role` and a string `content`")
        if body.get("stream"):
            raise _BadRequest("`stream` is not supported by this server")
        if body.get("n") not in (None, 1):
            raise _BadRequest("only `n`=1 is supported by this server")
        with self._lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            number = self.requests
        try:
            reply = self.responder(
                [{"role": m["role"], "content": m["content"]} for m in messages], body
            )
        finally:
            with self._lock:
                self.in_flight -= 1
        if isinstance(reply, str):
            reply = {"content": reply, "finish_reason": "stop"}
        return {
            "id": f"chatcmpl-{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(body.get("model") or self.model_name),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply["content"]},
                    "finish_reason": reply.get("finish_reason", "stop"),
                }
            ],
        }


def _handler(server: ChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests and training logs
            pass

        def _send(self, status: int, obj: Any) -> None:
            data = json.dumps(obj, ensure_ascii=False).encode("utf-8")
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
                pass

        def _error(self, status: int, message: str, kind: str) -> None:
            self._send(status, {"error": {"message": message, "type": kind}})

        def do_GET(self) -> None:
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                self._send(
                    200, {"object": "list", "data": [{"id": server.model_name, "object": "model"}]}
                )
            elif self.path.rstrip("/") in ("/health", "/v1/health"):
                self._send(200, {"status": "ok"})
            else:
                self._error(404, f"no route {self.path}", "not_found")

        def do_POST(self) -> None:
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._error(404, f"no route {self.path}", "not_found")
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length).decode("utf-8"))
            except ValueError as e:
                self._error(400, f"the request body is not JSON: {e}", "invalid_request_error")
                return
            try:
                if not isinstance(body, dict):
                    raise _BadRequest("the request body must be a JSON object")
                reply = server.complete(body)
            except _BadRequest as e:
                self._error(400, str(e), "invalid_request_error")
            except Exception as e:  # noqa: BLE001 (the responder failed: report it, keep serving)
                self._error(500, f"{type(e).__name__}: {e}", "server_error")
            else:
                self._send(200, reply)

    return Handler


def model_responder(
    model: Any, tokenizer: Any, template: str = "chimed", max_new_tokens: int = 256
) -> Responder:
    """Replies generated by `model`: the messages rendered by the one renderer, then
    `generate` with the request's `max_tokens`, `temperature` (0 or absent: greedy), `top_p`."""
    from chimed_lit.chat.render import render_prompt, resolve_template
    from chimed_lit.inference.generation import Sampling, generate

    resolve_template(tokenizer, template, "template")
    lock = threading.Lock()

    def respond(messages: list[Message], body: Mapping[str, Any]) -> dict[str, str]:
        temperature = float(body.get("temperature") or 0.0)
        sampling = Sampling(
            max_new_tokens=int(
                body.get("max_tokens") or body.get("max_completion_tokens") or max_new_tokens
            ),
            do_sample=temperature > 0,
            temperature=temperature or 1.0,
            top_p=float(body.get("top_p") or 1.0),
        )
        ids = render_prompt(tokenizer, messages, template)
        with lock:
            out = generate(model, tokenizer, [ids], sampling)[0]
        return {"content": out["text"], "finish_reason": "stop" if out["finished"] else "length"}

    return respond


def serve(
    model: Any,
    tokenizer: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    template: str = "chimed",
    max_new_tokens: int = 256,
    model_name: str = "chimed-lit",
) -> ChatServer:
    """Serve `model` (a causal LM) and `tokenizer` as an OpenAI-compatible chat endpoint,
    started now in a background thread; `.url` is its base, `.close()` stops it."""
    return ChatServer(
        model_responder(model, tokenizer, template, max_new_tokens), host, port, model_name
    )
