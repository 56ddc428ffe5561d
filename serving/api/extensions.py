"""Composes the optional parts of the request path (gateway, operator loop) from settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import APIRouter

from serving.api.app import Middleware
from serving.config.settings import Settings
from serving.engine.protocol import Engine
from serving.gateway.hooks import RequestPolicy, StreamHook


@dataclass
class Extensions:
    """Policies, stream hooks, routers and middlewares to plug into the app."""

    policies: list[RequestPolicy] = field(default_factory=list)
    stream_hooks: list[StreamHook] = field(default_factory=list)
    routers: list[APIRouter] = field(default_factory=list)
    middlewares: list[Middleware] = field(default_factory=list)


def build_extensions(settings: Settings, engine: Engine, *, engine_is_local: bool = True) -> Extensions:
    """Everything the settings switch on, in the order it must run."""
    from serving.gateway.build import build_gateway

    gateway = build_gateway(settings, engine, engine_is_local=engine_is_local)
    return Extensions(policies=list(gateway.policies), middlewares=list(gateway.middlewares))
