"""Graceful drain: a stopping replica takes no new requests and finishes its in-flight streams.

Ray Serve does the draining: a replica being stopped (scale-down, redeploy, delete) is
taken out of routing at once, then Serve waits until its ongoing requests — streams
included — have ended, up to ``graceful_shutdown_timeout_s``, checking every
``graceful_shutdown_wait_loop_s``. This module turns the gateway's drain settings into
those deployment options, for the deployment that receives client requests.
"""

from __future__ import annotations

from typing import Any

from serving.config.gateway import DrainSettings


def drain_deployment_options(settings: DrainSettings) -> dict[str, Any]:
    """Keyword arguments for ``Deployment.options(...)`` / ``@serve.deployment(...)``."""
    return {
        "graceful_shutdown_timeout_s": settings.graceful_shutdown_timeout_s,
        "graceful_shutdown_wait_loop_s": settings.graceful_shutdown_wait_loop_s,
    }
