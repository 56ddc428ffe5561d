"""Privacy by default: PII/secret detection and redaction, the opt-in audit log, a log filter."""

from serving.privacy.audit import AuditLog
from serving.privacy.log_filter import install_redaction
from serving.privacy.pii import PII_KINDS, PIIMatch, find_pii, redact
from serving.config.privacy import AuditSettings, PrivacySettings

__all__ = ["PII_KINDS", "AuditLog", "AuditSettings", "PIIMatch", "PrivacySettings", "find_pii", "install_redaction", "redact"]
