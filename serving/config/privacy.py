"""Settings of the privacy section: the opt-in audit log of conversation text.

By default no prompt or completion text is written anywhere (logs, traces, metrics,
the feedback database). Turning ``audit.enabled`` on is the one explicit switch that
keeps conversation text, and then only PII-redacted, in JSONL files with a retention
limit.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, PositiveInt

from serving.config.base import StrictModel


class AuditSettings(StrictModel):
    """The audit log: redacted conversation text as JSON lines, one file per UTC day."""

    enabled: bool = Field(
        False, description="Write prompt and completion text (PII-redacted) to the audit log."
    )
    dir: Path = Field(
        Path("~/.cache/llm-serving/audit"),
        description="Folder of the audit files (audit-YYYY-MM-DD.jsonl, mode 0600).",
    )
    retention_days: PositiveInt = Field(
        30, description="Audit files older than this many days are deleted."
    )
    max_text_chars: PositiveInt = Field(
        20_000, description="Longest text kept per message or completion; the rest is cut."
    )


class PrivacySettings(StrictModel):
    """What the stack may keep of conversation text (nothing, by default)."""

    audit: AuditSettings = AuditSettings()
    redact_logs: bool = Field(
        True,
        description="Redact PII and secrets in every log record of the replica process "
        "(defence in depth: the code never logs text on purpose).",
    )
