"""A deterministic OpenAI-compatible server whose timing is scripted by the prompt.

It exists to check the load generator against known delays (tests), to try the tool
without a model, and to exercise the benchmark runner. It listens on 127.0.0.1 only.

The last user message (or the completions prompt) may carry a directive::

    #script ttft_ms=50 itl_ms=10 tokens=6 burst=1 status=200 usage=1 error_after=-1

- ``ttft_ms``: wait before the first text chunk (a role-only chunk is sent at once);
- ``itl_ms``: wait between text chunks; ``tokens``: text chunks (one token each);
- ``burst``: tokens written per network write (>1 imitates a buffering proxy;
  0 sends the whole answer in one write at the end);
- ``status``: a non-200 status answers with an OpenAI error body instead;
- ``usage``: 0 omits the final usage chunk; ``error_after``: after N tokens an
  in-stream error event is sent and the stream ends.

Values missing from the directive come from the server's defaults. Every request's
directive, message count and generated text are recorded in ``ScriptedServer.log``.

Run it standalone: ``python -m loadtests.scripted_server --port 18100``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from aiohttp import web

DIRECTIVE = re.compile(r"#script((?:\s+\w+=-?[\d.]+)*)")
MODEL_ID = "scripted"


@dataclass(frozen=True)
class Script:
    """How one request is answered."""

    ttft_ms: float = 20.0
    itl_ms: float = 5.0
    tokens: int = 8
    burst: int = 1
    status: int = 200
    usage: int = 1
    error_after: int = -1

    def merged(self, text: str) -> "Script":
        """This script with the values of a ``#script`` directive found in ``text``."""
        match = DIRECTIVE.search(text)
        if not match:
            return self
        values: dict[str, Any] = {}
        for pair in match.group(1).split():
            key, _, raw = pair.partition("=")
            if key in self.__dataclass_fields__:
                kind = type(getattr(self, key))
                values[key] = kind(float(raw)) if kind is int else kind(raw)
        return replace(self, **values)


@dataclass
class Served:
    """What the server did for one request (for assertions in tests)."""

    script: Script
    messages: int
    received: float
    text: str = ""
    history: list[dict[str, str]] = field(default_factory=list)


class ScriptedServer:
    """The aiohttp application and its request log."""

    def __init__(self, default: Script | None = None) -> None:
        self.default = default or Script()
        self.log: list[Served] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.app = web.Application()
        self.app.router.add_get("/v1/models", self.models)
        self.app.router.add_post("/v1/chat/completions", self.chat)
        self.app.router.add_post("/v1/completions", self.completions)
        self.app.router.add_get("/health", self.health)

    async def health(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def models(self, _: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "loadtests"}]})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        messages = body.get("messages") or []
        users = [m.get("content", "") for m in messages if m.get("role") == "user"]
        return await self._answer(request, body, users[-1] if users else "", messages, chat=True)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        return await self._answer(request, body, str(body.get("prompt", "")), [], chat=False)

    async def _answer(self, request: web.Request, body: dict, text: str,
                      messages: list, *, chat: bool) -> web.StreamResponse:
        script = self.default.merged(text)
        served = Served(script, len(messages), time.perf_counter(),
                        history=[dict(m) for m in messages])
        self.log.append(served)
        if script.status != 200:
            return web.json_response(
                {"error": {"message": f"scripted status {script.status}", "type": "scripted",
                           "param": None, "code": script.status}}, status=script.status)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if body.get("stream"):
                return await self._stream(request, script, served, chat=chat)
            return await self._whole(script, served, chat=chat)
        except ConnectionError:  # the client went away (cancelled, timed out)
            return web.Response(status=499)
        finally:
            self.in_flight -= 1

    async def _stream(self, request: web.Request, script: Script, served: Served,
                      *, chat: bool) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        if chat:
            await response.write(_event(_chunk(chat, role=True)))
        start = time.perf_counter()
        pending = b""
        parts: list[str] = []
        for i in range(script.tokens):
            if i == script.error_after:
                await response.write(pending + _event({"error": {
                    "message": "scripted stream error", "type": "scripted", "code": 500}}))
                await response.write_eof()
                return response
            due = start + (script.ttft_ms + i * script.itl_ms) / 1000.0
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            word = f"tok{i} "
            parts.append(word)
            pending += _event(_chunk(chat, text=word))
            if script.burst > 0 and (i + 1) % script.burst == 0:
                await response.write(pending)
                pending = b""
        served.text = "".join(parts)
        if script.usage:
            pending += _event({**_chunk(chat), "choices": [], "usage": {
                "prompt_tokens": 10, "completion_tokens": script.tokens,
                "total_tokens": 10 + script.tokens}})
        await response.write(pending + b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _whole(self, script: Script, served: Served, *, chat: bool) -> web.Response:
        await asyncio.sleep((script.ttft_ms + max(0, script.tokens - 1) * script.itl_ms) / 1000)
        served.text = "".join(f"tok{i} " for i in range(script.tokens))
        choice: dict[str, Any] = {"index": 0, "finish_reason": "length"}
        if chat:
            choice["message"] = {"role": "assistant", "content": served.text}
        else:
            choice["text"] = served.text
        return web.json_response({"id": "x", "object": "chat.completion", "created": 0,
                                  "model": MODEL_ID, "choices": [choice], "usage": {
                                      "prompt_tokens": 10, "completion_tokens": script.tokens,
                                      "total_tokens": 10 + script.tokens}})

    async def start(self, port: int = 0) -> tuple[web.AppRunner, int]:
        """Serve on 127.0.0.1:``port`` (0: a free port); returns the runner and the port."""
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        sockets = site._server.sockets  # type: ignore[union-attr]
        return runner, sockets[0].getsockname()[1]


def _chunk(chat: bool, *, text: str | None = None, role: bool = False) -> dict[str, Any]:
    if chat:
        delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
        if text is not None:
            delta["content"] = text
        choices = [{"index": 0, "delta": delta, "finish_reason": None}]
        kind = "chat.completion.chunk"
    else:
        choices = [{"index": 0, "text": text or "", "finish_reason": None}]
        kind = "text_completion"
    return {"id": "x", "object": kind, "created": 0, "model": MODEL_ID, "choices": choices,
            "usage": None}


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def main() -> None:
    """Run the scripted server until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=18100)
    for name, value in asdict(Script()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args()
    default = Script(**{k: getattr(args, k) for k in asdict(Script())})
    web.run_app(ScriptedServer(default).app, host="127.0.0.1", port=args.port,
                access_log=None, print=lambda *_: None)


if __name__ == "__main__":
    main()
