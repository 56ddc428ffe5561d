"""An incremental parser of server-sent events (the ``text/event-stream`` format).

OpenAI-compatible servers stream ``data: {json}`` events separated by blank lines and
end with ``data: [DONE]``. The parser follows the WHATWG rules that matter here: lines
end with ``\\n``, ``\\r\\n`` or ``\\r``; ``data:`` lines of one event are joined with
``\\n``; lines starting with ``:`` are comments (keep-alives); an event is dispatched at
a blank line, and a final event without a trailing blank line is dispatched by
:meth:`SSEParser.close`.
"""

from __future__ import annotations

from dataclasses import dataclass

DONE = "[DONE]"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event: its type (``message`` unless named) and its data."""

    data: str
    event: str = "message"


class SSEParser:
    """Feed it bytes as they arrive; it returns the events completed by each feed."""

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event = ""
        self._pending_cr = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Parse ``chunk`` (any split of the stream) and return the completed events."""
        if self._pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the \n of a \r\n split across two feeds
        self._pending_cr = False
        self._buffer += chunk
        events: list[SSEEvent] = []
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                break
            end, width = cut
            line = self._buffer[:end]
            if self._buffer[end : end + 1] == b"\r" and end + 1 == len(self._buffer):
                self._pending_cr = True  # maybe the first half of \r\n
            self._buffer = self._buffer[end + width :]
            event = self._line(line.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: dispatch a last event that had no blank line after it."""
        events: list[SSEEvent] = []
        if self._buffer:
            event = self._line(self._buffer.decode("utf-8", errors="replace"))
            self._buffer = b""
            if event is not None:
                events.append(event)
        event = self._dispatch()
        if event is not None:
            events.append(event)
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        return None  # id/retry and unknown fields do not matter for measurement

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = SSEEvent(data="\n".join(self._data), event=self._event or "message")
        self._data = []
        self._event = ""
        return event


def _line_end(buffer: bytes) -> tuple[int, int] | None:
    """Index and width of the first line terminator in ``buffer``, if any."""
    cr = buffer.find(b"\r")
    lf = buffer.find(b"\n")
    if cr == -1 and lf == -1:
        return None
    if cr == -1 or (lf != -1 and lf < cr):
        return lf, 1
    if buffer[cr + 1 : cr + 2] == b"\n":
        return cr, 2
    return cr, 1
