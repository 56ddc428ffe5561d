"""The SSE parser: event framing, line endings, comments, any split of the byte stream."""

from __future__ import annotations

import pytest

from loadtests.sse import SSEEvent, SSEParser

STREAM = (
    b": keep-alive comment\n\n"
    b"data: {\"a\": 1}\n\n"
    b"event: custom\ndata: line one\ndata: line two\n\n"
    b"data:no-space\r\n\r\n"
    b"id: 7\nretry: 100\ndata: [DONE]\n\n"
)
EXPECTED = [
    SSEEvent('{"a": 1}'),
    SSEEvent("line one\nline two", event="custom"),
    SSEEvent("no-space"),
    SSEEvent("[DONE]"),
]


def parse_in_pieces(data: bytes, size: int) -> list[SSEEvent]:
    parser = SSEParser()
    events = []
    for i in range(0, len(data), size):
        events += parser.feed(data[i : i + size])
    return events + parser.close()


def test_parses_events_fields_and_comments() -> None:
    assert parse_in_pieces(STREAM, len(STREAM)) == EXPECTED


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64])
def test_any_split_of_the_stream_gives_the_same_events(size: int) -> None:
    assert parse_in_pieces(STREAM, size) == EXPECTED


@pytest.mark.parametrize("size", [1, 2, 4, 100])
def test_crlf_and_bare_cr_line_endings(size: int) -> None:
    data = b"data: x\r\n\r\ndata: y\r\rdata: z\n\n"
    assert [e.data for e in parse_in_pieces(data, size)] == ["x", "y", "z"]


def test_final_event_without_blank_line_is_dispatched_on_close() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: first\n\ndata: last") == [SSEEvent("first")]
    assert parser.close() == [SSEEvent("last")]


def test_events_are_returned_as_soon_as_they_are_complete() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: one\n") == []
    assert parser.feed(b"\n") == [SSEEvent("one")]


def test_utf8_split_inside_a_character() -> None:
    data = "data: café ✓\n\n".encode()
    assert parse_in_pieces(data, 1) == [SSEEvent("café ✓")]
