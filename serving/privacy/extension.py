"""The privacy feature's part of the request path: the opt-in audit log.

(Log redaction is not an extension: every replica installs it at bootstrap,
``serving.ray_serve.bootstrap``.)
"""

from __future__ import annotations

from serving.core.extension import BuildContext, Extension


def build(ctx: BuildContext) -> Extension | None:
    """The audit observer (``privacy.audit.enabled``)."""
    cfg = ctx.settings.privacy.audit
    if not cfg.enabled:
        return None
    from serving.privacy.audit import AuditLog
    from serving.privacy.audit_observer import AuditObserver

    observer = AuditObserver(AuditLog.from_settings(cfg))
    return Extension(observers=[observer], closers=[observer.close])
