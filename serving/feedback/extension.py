"""The feedback feature: every response's metadata recorded, ``/v1/feedback`` and its store."""

from __future__ import annotations

from serving.core.extension import BuildContext, Extension


def build(ctx: BuildContext) -> Extension | None:
    """The response recorder (an end-of-request observer) and the feedback route (``feedback.enabled``)."""
    cfg = ctx.settings.feedback
    if not cfg.enabled:
        return None
    from serving.feedback.api_router import build_router
    from serving.feedback.metrics import FeedbackMetrics
    from serving.feedback.recorder import ResponseRecorder
    from serving.feedback.service import FeedbackService
    from serving.feedback.store import FeedbackStore
    from serving.privacy.pii import redact

    store = FeedbackStore(
        cfg.database_url,
        flush_interval_s=cfg.flush_interval_s,
        max_pending=cfg.max_pending,
        retention_days=cfg.response_retention_days,
        password_file=cfg.database_password_file,
    ).start()
    metrics = FeedbackMetrics()
    recorder = ResponseRecorder(
        store,
        model_version=ctx.settings.model.version,
        metrics=metrics,
        store_conversations=cfg.store_conversations,
        redact=redact,
    )
    return Extension(
        observers=[recorder],
        routers=[build_router(FeedbackService(cfg, store, metrics), guard=ctx.route_guard)],
        closers=[store.close],
        components={"feedback_store": store, "feedback_metrics": metrics},
    )
