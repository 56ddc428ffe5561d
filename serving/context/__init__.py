"""Conversation context: fitting long conversations into the window, and sticky routing."""

from serving.config.context import ContextSettings, StickyRoutingSettings

__all__ = ["ContextSettings", "StickyRoutingSettings"]
