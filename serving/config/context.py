"""Settings of the context section: what to do with conversations over the context window,
and sticky routing of a conversation to one replica."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveInt

from serving.config.base import StrictModel

ROUTER_CLASS = "serving.context.routing:SessionAffinityRouter"
# Ray Serve's proxy reads the session header name from this environment variable.
RAY_SESSION_HEADER_ENV = "RAY_SERVE_SESSION_ID_HEADER_KEY"


class StickyRoutingSettings(StrictModel):
    """Route every request of a conversation (same session header) to the same replica."""

    enabled: bool = Field(False, description="Use the session-affinity request router.")
    header: str = Field(
        "x-session-id",
        pattern=r"^[A-Za-z0-9-]{1,64}$",
        description="The client header naming the conversation (Ray Serve's proxy reads it; "
        f"a non-default name must also be set as {RAY_SESSION_HEADER_ENV} where Ray starts).",
    )
    num_fallback_replicas: int = Field(
        1, ge=0, description="Replicas tried, in hash order, when the session's replica is full."
    )

    def request_router_config(self) -> dict[str, Any] | None:
        """The ``request_router_config`` of the model deployment (None: Serve's default)."""
        if not self.enabled:
            return None
        return {
            "request_router_class": ROUTER_CLASS,
            "request_router_kwargs": {"num_fallback_replicas": self.num_fallback_replicas},
        }


class ContextSettings(StrictModel):
    """Conversation context policy."""

    policy: Literal["truncate_oldest", "reject", "off"] = Field(
        "truncate_oldest",
        description="truncate_oldest: keep system messages and the newest turns that fit; "
        "reject: refuse with 400 context_length_exceeded; off: leave it to the engine.",
    )
    reserve_output_tokens: PositiveInt = Field(
        128, description="Room kept for the answer when the request sets no max_tokens."
    )
    sticky_routing: StickyRoutingSettings = StickyRoutingSettings()
