"""Settings of the gateway policies: API keys, per-key limits, admission, hygiene, drain.

The section hangs off the settings tree as ``Settings.gateway``. Everything is off or
unlimited by default (a local run needs no key); the Kubernetes overlays turn auth and
limits on. Key material never lives here: keys come from a file (a mounted Secret).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator


class _Strict(BaseModel):
    """Base of every gateway settings section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class AuthSettings(_Strict):
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


class TierLimits(_Strict):
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


class LimitsSettings(_Strict):
    """Per-key request, token and concurrency limits, shared by all ingress replicas."""

    tiers: dict[str, TierLimits] = Field(
        default_factory=lambda: {"default": TierLimits()},
        description="Named tiers; a key names its tier in the keys file.",
    )
    default_tier: str = Field("default", description="Tier of keys that name none (and of anonymous use).")
    keys: dict[str, TierLimits] = Field(
        default_factory=dict, description="Overrides per key id (the key's short id, never the key)."
    )
    store: Literal["auto", "local", "ray"] = Field(
        "auto",
        description="Where counters live. ray: one named Ray actor shared by every replica; "
        "local: in this process (single replica, tests); auto: ray when Ray is running.",
    )
    actor_name: str = Field(
        "serving-gateway-limiter", min_length=1, description="Name of the Ray actor (the Serve app name is appended)."
    )
    actor_namespace: str = Field("serve", min_length=1, description="Ray namespace of the actor (Serve's).")
    default_output_tokens: PositiveInt = Field(
        256, description="Output tokens reserved when a request sets no max_tokens (corrected by real usage)."
    )
    lease_s: PositiveFloat = Field(
        900.0, description="A concurrency slot whose release never came is reclaimed after this."
    )
    store_timeout_s: PositiveFloat = Field(1.0, description="Longest a limiter call may take.")
    fail_open: bool = Field(
        True, description="Admit requests when the limiter store cannot be reached (logged and counted)."
    )

    @model_validator(mode="after")
    def _tiers_exist(self) -> "LimitsSettings":
        if self.default_tier not in self.tiers:
            raise ValueError(f"limits.default_tier {self.default_tier!r} is not in limits.tiers")
        return self


class AdmissionSettings(_Strict):
    """Refuse with 429 (never 503) when the model's queue is full."""

    enabled: bool = True
    max_waiting: int = Field(
        64, ge=0, description="Requests allowed to wait beyond the engine's running batch."
    )
    max_in_flight: PositiveInt | None = Field(
        None, description="Hard cap on requests inside this replica; None: engine batch + max_waiting."
    )
    retry_after_s: PositiveInt = Field(1, description="Retry-After sent with an overload 429.")


class HygieneSettings(_Strict):
    """Bounds on what one request may ask for."""

    max_body_bytes: PositiveInt = Field(2 * 1024 * 1024, description="Largest request body (413 above).")
    max_messages: PositiveInt = Field(512, description="Most chat messages in one request.")
    max_chars: PositiveInt = Field(
        400_000, description="Most characters of prompt/messages text in one request."
    )
    max_output_tokens: PositiveInt | None = Field(
        None,
        description="Cap on max_tokens: larger or missing values are lowered to it. "
        "A max_tokens above the context window is a 400 either way.",
    )


class DrainSettings(_Strict):
    """How a replica that is stopping finishes its in-flight streams."""

    graceful_shutdown_timeout_s: PositiveFloat = Field(
        120.0, description="Longest a stopping ingress replica waits for in-flight requests."
    )
    graceful_shutdown_wait_loop_s: PositiveFloat = Field(
        1.0, description="How often a stopping replica checks whether it is idle."
    )


class GatewayMetricsSettings(_Strict):
    """Label choices of the gateway metrics (bounded by default)."""

    label_key_id: bool = Field(
        False, description="Add the short key id as a label (only for a small, known set of keys)."
    )


class GatewaySettings(_Strict):
    """All gateway policies of one serving application."""

    auth: AuthSettings = AuthSettings()
    limits: LimitsSettings = LimitsSettings()
    admission: AdmissionSettings = AdmissionSettings()
    hygiene: HygieneSettings = HygieneSettings()
    drain: DrainSettings = DrainSettings()
    metrics: GatewayMetricsSettings = GatewayMetricsSettings()
