"""Composes the optional parts of the request path (gateway, operator loop) from settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from fastapi import APIRouter

from serving.api.app import Middleware
from serving.config.settings import Settings
from serving.engine.protocol import Engine
from serving.gateway.hooks import RequestPolicy, StreamHook
from serving.operator_loop import OperatorHandles, build_operator


@dataclass
class Extensions:
    """Policies, stream hooks, routers and middlewares to plug into the app."""

    policies: list[RequestPolicy] = field(default_factory=list)
    stream_hooks: list[StreamHook] = field(default_factory=list)
    routers: list[APIRouter] = field(default_factory=list)
    middlewares: list[Middleware] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Flush and release what the extensions hold (on replica shutdown)."""
        for close in self.closers:
            close()


def build_extensions(
    settings: Settings,
    engine: Engine,
    *,
    engine_is_local: bool = True,
    operator_handles: OperatorHandles | None = None,
) -> Extensions:
    """Everything the settings switch on, in the order it must run.

    Gateway policies (auth, hygiene, limits, admission) run first; then the operator
    loop's (input moderation, conversation context) and its stream hooks (output
    moderation, feedback metadata) and routes (feedback, moderations, embeddings), which
    run the gateway's policies through a ``RouteGuard``.
    """
    from serving.api.common.guard import RouteGuard
    from serving.gateway.build import build_gateway

    gateway = build_gateway(settings, engine, engine_is_local=engine_is_local)
    # The routes that generate nothing pass the same gateway policies (limits, admission).
    operator = build_operator(
        settings, engine, handles=operator_handles, route_guard=RouteGuard(gateway.policies)
    )
    return Extensions(
        policies=[*gateway.policies, *operator.policies],
        stream_hooks=list(operator.stream_hooks),
        routers=list(operator.routers),
        middlewares=list(gateway.middlewares),
        closers=[operator.close],
    )
