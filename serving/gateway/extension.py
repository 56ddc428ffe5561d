"""The gateway feature: the request policies in order, and the ASGI middlewares.

``build`` is its entry in ``serving.extensions.FEATURES`` (the first one); its
policies also guard the routes that generate nothing (``RouteGuard``).

Policy order: auth -> hygiene -> rate limit -> admission. Hygiene comes before the
rate limit so that reservations use the capped max_tokens; the rate limit comes before
admission so that every response, an overload 429 too, carries the x-ratelimit headers
(a request refused for overload is given back to the key's quota in ``after``).
"""

from __future__ import annotations

import logging
from typing import Any

from serving.core.extension import BuildContext, Extension
from serving.engine.protocol import Engine
from serving.gateway.admission.policy import AdmissionController, AdmissionPolicy
from serving.gateway.auth.keys import KeyStore
from serving.gateway.drain import drain_deployment_options
from serving.gateway.auth.middleware import APIKeyMiddleware
from serving.gateway.auth.policy import IdentityPolicy
from serving.gateway.hygiene.body_limit import BodySizeLimitMiddleware
from serving.gateway.hygiene.policy import HygienePolicy
from serving.gateway.limits.policy import LimitResolver, RateLimitPolicy
from serving.gateway.limits.store import Limiter, LocalLimiter
from serving.gateway.metrics import DENIED, GatewayMetrics
from serving.config.gateway import GatewaySettings, LimitsSettings

log = logging.getLogger(__name__)


def ingress_options(settings: Any) -> dict[str, Any]:
    """The split ingress drains like the model replica: it finishes its in-flight streams."""
    return drain_deployment_options(settings.gateway.drain)


def build_limiter(settings: LimitsSettings) -> Limiter:
    """The counter store the settings ask for (``auto``: the Ray actor when Ray runs)."""
    store = settings.store
    if store == "auto":
        import ray

        store = "ray_actor" if ray.is_initialized() else "memory"
    if store == "memory":
        return LocalLimiter(lease_s=settings.lease_s)
    if store == "redis":
        from serving.gateway.limits.redis_store import RedisLimiter

        assert settings.redis_url is not None  # the settings validator guarantees it
        return RedisLimiter(
            settings.redis_url.get_secret_value(),
            prefix=_actor_name(settings.redis_prefix),
            lease_s=settings.lease_s,
            timeout_s=settings.store_timeout_s,
        )
    from serving.gateway.limits.ray_store import RayLimiter

    return RayLimiter(
        _actor_name(settings.actor_name),
        namespace=settings.actor_namespace,
        lease_s=settings.lease_s,
        timeout_s=settings.store_timeout_s,
    )


def _actor_name(base: str) -> str:
    """One limiter per Serve application: the app name is appended inside a replica."""
    try:
        from ray import serve

        app = serve.get_replica_context().app_name
    except Exception:  # not inside a Serve replica
        return base
    return f"{base}.{app}" if app else base


def build(ctx: BuildContext) -> Extension:
    """The gateway's extension for one replica (always on: identity, hygiene, admission; limits
    when auth or a limit is on), its policies guarding the routes that generate nothing.

    ``ctx.engine_is_local``: the engine runs in this replica, so its ``load()`` is real and
    admission is enforced here. False in a split ingress (the engine is behind a handle):
    the policy then only counts in-flight requests, and the model replica enforces
    admission with ``build_admission``. ``ctx.overrides["limiter"]``: a limiter store
    instead of the one the settings ask for (tests).
    """
    settings, engine = ctx.settings, ctx.engine
    limiter: Limiter | None = ctx.overrides.get("limiter")
    gw: GatewaySettings = settings.gateway
    metrics = GatewayMetrics(engine.info.id, label_key_id=gw.metrics.label_key_id)

    store: KeyStore | None = None
    policies: list[Any] = []
    if gw.auth.enabled:
        assert gw.auth.keys_file is not None  # the settings validator guarantees it
        store = KeyStore(gw.auth.keys_file, reload_interval_s=gw.auth.reload_interval_s)
    policies.append(IdentityPolicy(default_tier=gw.limits.default_tier, require_key=store is not None))
    policies.append(HygienePolicy(gw.hygiene, max_model_len=engine.info.max_model_len, metrics=metrics))
    if gw.auth.enabled or _any_limit(gw.limits):
        policies.append(
            RateLimitPolicy(
                limiter if limiter is not None else build_limiter(gw.limits),
                LimitResolver(gw.limits, store),
                default_output_tokens=gw.limits.default_output_tokens,
                fail_open=gw.limits.fail_open,
                metrics=metrics,
                model=engine.info,
            )
        )
    admission = build_admission(settings, engine, metrics=metrics, enforce=ctx.engine_is_local)
    policies.append(AdmissionPolicy(admission))
    # Outermost first: a request without a key is refused before its body is read, and
    # the body reader passes requests the router does not serve on unread (404/405).
    middlewares: list[tuple[type, dict[str, Any]]] = []
    if store is not None:
        middlewares.append(
            (APIKeyMiddleware, {"store": store, "metrics": metrics, "default_tier": gw.limits.default_tier})
        )
    middlewares.append(
        (
            BodySizeLimitMiddleware,
            {
                "max_body_bytes": gw.hygiene.max_body_bytes,
                "body_read_timeout_s": gw.hygiene.body_read_timeout_s,
                "on_reject": lambda: metrics.decision("hygiene", DENIED, "body_size"),
                "on_timeout": lambda: metrics.decision("hygiene", DENIED, "body_timeout"),
            },
        )
    )
    return Extension(
        policies=policies, middlewares=middlewares, guards_routes=True, components={"gateway_metrics": metrics}
    )


def build_admission(
    settings: Any, engine: Engine, *, metrics: GatewayMetrics | None = None, enforce: bool = True
) -> AdmissionController:
    """The admission check next to ``engine`` (the model replica in the split topology)."""
    gw: GatewaySettings = settings.gateway
    if metrics is None:
        metrics = GatewayMetrics(engine.info.id, label_key_id=gw.metrics.label_key_id)
    controller = AdmissionController(engine.load, gw.admission, metrics=metrics, enforce=enforce)
    if controller.enforce:
        _warn_if_serve_queues_first(settings, controller.capacity(engine.load()))
    return controller


def _warn_if_serve_queues_first(settings: Any, capacity: int) -> None:
    """Serve's own per-replica cap must sit above admission's, or Serve's 503 comes first."""
    deployment = getattr(getattr(settings, "model", None), "deployment", None)
    ongoing = getattr(deployment, "max_ongoing_requests", None)
    if ongoing is not None and ongoing <= capacity:
        log.warning(
            "model.deployment.max_ongoing_requests (%d) <= admission capacity (%d): Serve will queue "
            "and shed load (503) before admission answers 429; raise max_ongoing_requests",
            ongoing,
            capacity,
        )


def _any_limit(settings: LimitsSettings) -> bool:
    """Whether any tier or settings override limits anything.

    With auth on, the policy is installed regardless: a key may gain limits in the keys
    file on a reload. Unlimited keys never reach the limiter store.
    """
    tiers = any(not t.is_unlimited() for t in settings.tiers.values())
    keys = any(not k.is_unlimited() for k in settings.keys.values())
    return tiers or keys

