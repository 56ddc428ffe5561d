"""Settings of the gateway policies: API keys, per-key limits, admission, hygiene, drain.

The section hangs off the settings tree as ``Settings.gateway``. Everything is off or
unlimited by default (a local run needs no key); the Kubernetes overlays turn auth and
limits on. Key material never lives here: keys come from a file (a mounted Secret).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    field_validator,
    model_validator,
)

from serving.config.base import StrictModel



class AuthSettings(StrictModel):
    """API keys: where they come from and how often the file is re-read."""

    enabled: bool = Field(False, description="Require an API key on every /v1 request.")
    keys_file: Path | None = Field(
        None,
        description="YAML file of keys (a mounted Kubernetes Secret); required when enabled. "
        "Format: docs/gateway.md.",
    )
    reload_interval_s: PositiveFloat = Field(
        5.0, description="How often the keys file's mtime/content is checked for changes."
    )

    @model_validator(mode="after")
    def _file_when_enabled(self) -> "AuthSettings":
        if self.enabled and self.keys_file is None:
            raise ValueError("auth.keys_file is required when auth.enabled is true")
        return self


class TierLimits(StrictModel):
    """Per-key limits of one tier (None: unlimited in that dimension)."""

    rpm: PositiveInt | None = Field(None, description="Requests per minute.")
    tpm: PositiveInt | None = Field(
        None, description="Tokens per minute: prompt + output (max_tokens reserved, real usage charged)."
    )
    max_concurrent: PositiveInt | None = Field(None, description="Requests in flight at once.")

    def is_unlimited(self) -> bool:
        """True when no dimension is limited (the limiter is not consulted at all)."""
        return self.rpm is None and self.tpm is None and self.max_concurrent is None

    def merged(self, override: "TierLimits | None") -> "TierLimits":
        """These limits with the fields ``override`` sets replacing them."""
        if override is None:
            return self
        return self.model_copy(update=override.model_dump(exclude_unset=True, exclude_none=True))


class LimitsSettings(StrictModel):
    """Per-key request, token and concurrency limits, shared by all ingress replicas."""

    tiers: dict[str, TierLimits] = Field(
        default_factory=lambda: {"default": TierLimits()},
        description="Named tiers; a key names its tier in the keys file.",
    )
    default_tier: str = Field("default", description="Tier of keys that name none (and of anonymous use).")
    keys: dict[str, TierLimits] = Field(
        default_factory=dict, description="Overrides per key id (the key's short id, never the key)."
    )
    store: Literal["auto", "memory", "ray_actor", "redis"] = Field(
        "auto",
        description="Where counters live. ray_actor: one named Ray actor shared by every replica of "
        "this cluster (counters start afresh if it restarts); redis: a Redis server shared by every "
        "replica of every cluster using it (needs redis_url and the `redis` extra); memory: in this "
        "process (single replica, tests); auto: ray_actor when Ray is running, else memory.",
    )
    redis_url: SecretStr | None = Field(
        None,
        description="redis://[:password@]host:port/db (rediss:// for TLS, unix:// for a socket); "
        "required when store is redis. Set it from a Secret (SERVING_GATEWAY__LIMITS__REDIS_URL).",
    )
    redis_prefix: str = Field(
        "serving-gateway-limiter",
        min_length=1,
        description="Prefix of the Redis keys (the Serve app name is appended inside a replica).",
    )
    actor_name: str = Field(
        "serving-gateway-limiter", min_length=1, description="Name of the Ray actor (the Serve app name is appended)."
    )
    actor_namespace: str = Field("serve", min_length=1, description="Ray namespace of the actor (Serve's).")
    default_output_tokens: PositiveInt = Field(
        256,
        description="Output tokens reserved when neither max_tokens nor the model is known (never on "
        "the request path: there a request without max_tokens reserves the model's output cap).",
    )
    lease_s: PositiveFloat = Field(
        900.0, description="A concurrency slot whose release never came is reclaimed after this."
    )
    store_timeout_s: PositiveFloat = Field(1.0, description="Longest a limiter call may take.")
    fail_open: bool = Field(
        False,
        description="When the limiter store cannot be reached: false (default) refuses limited requests "
        "with 503 limiter_unavailable + Retry-After; true admits them unmetered. Both are logged and counted.",
    )

    @field_validator("store", mode="before")
    @classmethod
    def _earlier_store_names(cls, value: object) -> object:
        """``local`` and ``ray`` (the earlier names) still load."""
        return {"local": "memory", "ray": "ray_actor"}.get(value, value) if isinstance(value, str) else value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("limits.redis_url must start with redis://, rediss:// or unix://")
        return value

    @model_validator(mode="after")
    def _tiers_exist(self) -> "LimitsSettings":
        if self.default_tier not in self.tiers:
            raise ValueError(f"limits.default_tier {self.default_tier!r} is not in limits.tiers")
        if self.store == "redis" and self.redis_url is None:
            raise ValueError("limits.redis_url is required when limits.store is redis")
        return self


class AdmissionSettings(StrictModel):
    """Refuse with 429 (never 503) when the model's queue is full."""

    enabled: bool = True
    max_waiting: int = Field(
        1024,
        ge=0,
        description="Requests allowed to wait beyond the engine's running batch. Large by default: "
        "a burst of 1,000 clients waits in the engine's queue (as on vLLM's own server) instead of "
        "getting 429s that outlast the official client's 2 retries; lower it to shed load sooner "
        "(loadtests/results/2026-12-02-many-clients/).",
    )
    max_in_flight: PositiveInt | None = Field(
        None, description="Hard cap on requests inside this replica; None: engine batch + max_waiting."
    )
    retry_after_s: PositiveInt = Field(1, description="Retry-After sent with an overload 429.")


class HygieneSettings(StrictModel):
    """Bounds on what one request may ask for."""

    max_body_bytes: PositiveInt = Field(2 * 1024 * 1024, description="Largest request body (413 above).")
    body_read_timeout_s: PositiveFloat = Field(
        10.0,
        description="Longest the whole request body may take to arrive (408 after): a client that "
        "stops sending mid-body must not hold a request slot.",
    )
    max_messages: PositiveInt = Field(512, description="Most chat messages in one request.")
    max_chars: PositiveInt = Field(
        400_000, description="Most characters of prompt/messages text in one request."
    )
    max_output_tokens: PositiveInt | None = Field(
        None,
        description="Cap on max_tokens: larger or missing values are lowered to it. "
        "A max_tokens above the context window is a 400 either way.",
    )


class DrainSettings(StrictModel):
    """How a replica that is stopping finishes its in-flight streams."""

    graceful_shutdown_timeout_s: PositiveFloat = Field(
        300.0,
        description="Longest a stopping ingress replica waits for in-flight requests "
        "(>= http.request_timeout_s: the settings refuse less).",
    )
    graceful_shutdown_wait_loop_s: PositiveFloat = Field(
        1.0, description="How often a stopping replica checks whether it is idle."
    )


class GatewayMetricsSettings(StrictModel):
    """Label choices of the gateway metrics (bounded by default)."""

    label_key_id: bool = Field(
        False, description="Add the short key id as a label (only for a small, known set of keys)."
    )


class GatewaySettings(StrictModel):
    """All gateway policies of one serving application."""

    auth: AuthSettings = AuthSettings()
    limits: LimitsSettings = LimitsSettings()
    admission: AdmissionSettings = AdmissionSettings()
    hygiene: HygieneSettings = HygieneSettings()
    drain: DrainSettings = DrainSettings()
    metrics: GatewayMetricsSettings = GatewayMetricsSettings()
