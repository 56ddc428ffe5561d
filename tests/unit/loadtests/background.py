"""Local test servers in a background thread with their own event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def serving_in_thread(start: Callable[[], Awaitable[tuple[Any, int]]]) -> Iterator[int]:
    """Run an aiohttp server in its own thread and event loop while the block runs; its port.

    ``start`` (awaited in that loop) starts it and returns its ``AppRunner`` and port.
    """
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, Any] = {}

    def serve() -> None:
        asyncio.set_event_loop(loop)
        box["runner"], box["port"] = loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10), "the local server did not start"
    try:
        yield box["port"]
    finally:
        asyncio.run_coroutine_threadsafe(box["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
