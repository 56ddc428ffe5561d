"""The loopback guard: only this machine is a target unless remote is explicitly allowed."""

from __future__ import annotations

import pytest

from loadtests.safety import RemoteTargetRefused, check_target, is_loopback_url


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8000/v1", "http://127.9.9.9/v1", "http://localhost:1/v1",
    "http://LOCALHOST/v1", "http://[::1]:8000/v1", "https://127.0.0.1/v1",
])
def test_loopback_urls_are_accepted(url: str) -> None:
    assert is_loopback_url(url)
    assert check_target(url + "/") == url


@pytest.mark.parametrize("url", [
    "http://10.0.0.5:8000/v1", "http://192.168.1.2/v1", "http://api.openai.com/v1",
    "http://localhost.example.com/v1", "http://128.0.0.1/v1", "http://0.0.0.0:8000/v1",
])
def test_other_hosts_are_refused_by_default(url: str) -> None:
    assert not is_loopback_url(url)
    with pytest.raises(RemoteTargetRefused, match="--allow-remote"):
        check_target(url)


def test_remote_is_accepted_only_when_allowed() -> None:
    url = "https://api.openai.com/v1"
    assert check_target(url, allow_remote=True) == url


@pytest.mark.parametrize("url", ["127.0.0.1:8000", "ftp://127.0.0.1/v1", "http:///v1"])
def test_malformed_urls_are_rejected(url: str) -> None:
    with pytest.raises(ValueError):
        check_target(url)
