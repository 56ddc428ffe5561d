"""Liveness ``GET /health`` and readiness ``GET /ready``."""

from __future__ import annotations

from fastapi import APIRouter

from serving.api.health.readiness import Readiness


def build_router(readiness: Readiness) -> APIRouter:
    """Health routes: liveness is the process answering; readiness is a real generation."""
    router = APIRouter(tags=["health"])

    @router.get("/health")
    async def health() -> dict[str, str]:
        await readiness.engine.check_health()  # a dead engine fails liveness: restart it
        return {"status": "ok"}

    @router.get("/ready")
    async def ready() -> dict[str, str]:
        await readiness.check()
        return {"status": "ready"}

    return router
