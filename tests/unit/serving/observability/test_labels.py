"""Bounded label values."""

from __future__ import annotations

import pytest

from serving.observability.labels import OTHER, BoundedLabel, status_class


@pytest.mark.parametrize(
    ("code", "expected"),
    [(200, "2xx"), (201, "2xx"), (400, "4xx"), (429, "4xx"), (499, "4xx"), (500, "5xx"), (504, "5xx"), (99, OTHER), (600, OTHER)],
)
def test_status_class(code: int, expected: str) -> None:
    assert status_class(code) == expected


def test_a_known_set_maps_everything_else_to_other() -> None:
    label = BoundedLabel({"ok", "aborted"})
    assert [label("ok"), label("aborted"), label("OK"), label("")] == ["ok", "aborted", OTHER, OTHER]


@pytest.mark.parametrize(
    "raw",
    [
        "/v1/chat/completions?api_key=sk-123",  # query strings
        "tell me about my neighbour's dog",  # text with spaces
        "x" * 65,  # too long
        "/v1/ünïcode",
        "",
    ],
)
def test_unsafe_values_are_other(raw: str) -> None:
    assert BoundedLabel()(raw) == OTHER


def test_safe_values_pass_until_the_cap_then_only_known_ones() -> None:
    label = BoundedLabel(max_values=2)
    assert label("/v1/models/{model}") == "/v1/models/{model}"
    assert label("unmatched") == "unmatched"
    assert label("/v1/third") == OTHER
    assert label("unmatched") == "unmatched"  # already seen: still itself
