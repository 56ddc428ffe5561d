"""What the app's router will do with a request, asked before the router runs (ASGI middleware).

Middlewares that decide per route (the API key check, the body reader) must see the
path the way the router does: without the ``root_path`` a proxy or a Serve route
prefix adds. They use these helpers, never the raw ``scope["path"]``.
"""

from __future__ import annotations

from typing import Any

# The router's own normalisation (root_path stripped), so both see one path.
from starlette._utils import get_route_path
from starlette.routing import Match

Scope = dict[str, Any]


def route_path(scope: Scope) -> str:
    """The path the router matches routes against (``scope["path"]`` minus ``root_path``)."""
    return get_route_path(scope)


def serves(scope: Scope) -> bool | None:
    """Whether the app's router has a route for this path *and* method.

    ``False`` means the router will answer 404, 405 or a trailing-slash redirect without
    reading the body; ``None`` means the app in the scope has no router to ask (a bare
    ASGI app), so the caller must assume the request is served.
    """
    router = getattr(scope.get("app"), "router", None)
    routes = getattr(router, "routes", None)
    if routes is None:
        return None
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return True
    return False
