"""Content safety: rules, PII detectors and a classifier, on inputs, streamed outputs and /v1/moderations."""

from serving.config.moderation import ClassifierSettings, ModerationSettings, PIIActions, Rule

__all__ = ["ClassifierSettings", "ModerationSettings", "PIIActions", "Rule"]
