"""The one shape every feature plugs into the request path with, and the composition of them.

A feature is a ``Feature``: a name, a ``build`` that turns the settings and the engine
into an ``Extension`` (its policies, stream hooks, end-of-request observers, routers,
ASGI middlewares and what to close), and optionally the extra Ray Serve deployments
it needs. ``serving.extensions.FEATURES`` is the one ordered list of them; the app
factory and the Ray Serve builder read only that list (through ``compose``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from serving.core.guard import RouteGuard
from serving.core.hooks import RequestObserver, RequestPolicy, StreamHook
from serving.engine.protocol import Engine

# An ASGI middleware class and its keyword arguments.
Middleware = tuple[type, dict[str, Any]]


@dataclass
class Extension:
    """What one feature plugs in. Policies run in list order (then the next feature's);
    stream hooks wrap innermost first; middlewares are outermost first.

    ``guards_routes``: the policies also run on the routes that generate nothing
    (embeddings, moderations, feedback) through the ``RouteGuard`` (auth, limits, admission).
    """

    policies: list[RequestPolicy] = field(default_factory=list)
    stream_hooks: list[StreamHook] = field(default_factory=list)
    observers: list[RequestObserver] = field(default_factory=list)
    routers: list[Any] = field(default_factory=list)  # fastapi.APIRouter
    middlewares: list[Middleware] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)
    guards_routes: bool = False
    # Named parts for operators and tests to reach (the feedback store, the moderation policy).
    components: dict[str, Any] = field(default_factory=dict)


@dataclass
class BuildContext:
    """What a feature's ``build`` receives: the settings tree, the engine and its place."""

    settings: Any  # serving.config.settings.Settings
    engine: Engine
    engine_is_local: bool = True  # False in the split ingress: the engine is behind a handle
    handles: Mapping[str, Any] = field(default_factory=dict)  # Serve handles of the extra deployments, by name
    route_guard: RouteGuard = field(default_factory=RouteGuard)  # filled with the guarding policies by compose
    overrides: Mapping[str, Any] = field(default_factory=dict)  # in-process parts instead of handles (tests)


@dataclass(frozen=True)
class Feature:
    """One entry of the ordered feature list."""

    name: str
    build: Callable[[BuildContext], Extension | None]  # None: switched off by the settings
    # Bound Serve deployments this feature needs, by handle name (settings -> {name: Application}).
    deployments: Callable[[Any], Mapping[str, Any]] | None = None
    # Serve options this feature sets on the model deployment (settings -> options), e.g. a request router.
    model_options: Callable[[Any], Mapping[str, Any]] | None = None
    # Serve options this feature sets on the split topology's ingress deployment, e.g. its drain.
    ingress_options: Callable[[Any], Mapping[str, Any]] | None = None


@dataclass
class Composition(Extension):
    """Every enabled feature's extension, merged in list order (itself one extension), and
    what each feature built."""

    by_feature: dict[str, Extension] = field(default_factory=dict)
    _closed: bool = False

    def close(self) -> None:
        """Flush and release what the extensions hold (on replica shutdown), last built first; once."""
        if self._closed:
            return
        self._closed = True
        for close in reversed(self.closers):
            close()


def compose(features: Sequence[Feature], ctx: BuildContext) -> Composition:
    """Build every feature in order and merge what they plug in."""
    out = Composition()
    guarding: list[RequestPolicy] = []
    for feature in features:
        ext = feature.build(ctx)
        if ext is None:
            continue
        out.by_feature[feature.name] = ext
        out.policies.extend(ext.policies)
        out.stream_hooks.extend(ext.stream_hooks)
        out.observers.extend(ext.observers)
        out.routers.extend(ext.routers)
        out.middlewares.extend(ext.middlewares)
        out.closers.extend(ext.closers)
        out.components.update(ext.components)
        if ext.guards_routes:
            guarding.extend(ext.policies)
    ctx.route_guard.policies = tuple(guarding)
    return out


def model_options(features: Sequence[Feature], settings: Any) -> dict[str, Any]:
    """The Serve options the features set on the model deployment (merged in list order)."""
    return _options(features, settings, "model_options")


def ingress_options(features: Sequence[Feature], settings: Any) -> dict[str, Any]:
    """The Serve options the features set on the split ingress deployment (merged in list order)."""
    return _options(features, settings, "ingress_options")


def _options(features: Sequence[Feature], settings: Any, kind: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for feature in features:
        make = getattr(feature, kind)
        if make is not None:
            options.update(make(settings))
    return options


def deployments(features: Sequence[Feature], settings: Any) -> dict[str, Any]:
    """The extra Serve deployments of every feature, to bind as the ingress's keyword args."""
    apps: dict[str, Any] = {}
    for feature in features:
        if feature.deployments is not None:
            apps.update(feature.deployments(settings))
    return apps
