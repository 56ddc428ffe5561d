"""The loopback guard: load is sent to this machine unless a person explicitly says otherwise.

Scenario and benchmark files may only name loopback targets (127.0.0.0/8, ``::1``,
``localhost``). Another host is accepted only when it was typed on the command line
(``--url``) together with ``--allow-remote``, so that a shared scenario file can never
point a load test at somebody else's server.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"


class RemoteTargetRefused(ValueError):
    """A target URL is not on this machine and remote targets were not allowed."""


def is_loopback_url(url: str) -> bool:
    """True when ``url``'s host is a loopback address or ``localhost``."""
    host = urlsplit(url).hostname
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a DNS name other than localhost is never assumed local


def check_target(url: str, *, allow_remote: bool = False) -> str:
    """Return ``url`` normalised (no trailing slash), or refuse a non-loopback host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"target URL must be http(s)://host[:port]/path, got {url!r}")
    if not allow_remote and not is_loopback_url(url):
        raise RemoteTargetRefused(
            f"refusing to send load to {parts.hostname!r}: only loopback targets "
            "(127.0.0.1, ::1, localhost) are allowed by default. To load-test another "
            "host, pass its URL with --url together with --allow-remote."
        )
    return url.rstrip("/")
