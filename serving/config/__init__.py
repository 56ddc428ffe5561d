"""The settings tree: one pydantic model, validated once at startup."""

from serving.config.settings import (
    AutoscalingSettings,
    DeploymentSettings,
    EngineSettings,
    HTTPSettings,
    ModelSettings,
    RaySettings,
    Settings,
    load_settings,
)

__all__ = [
    "AutoscalingSettings",
    "DeploymentSettings",
    "EngineSettings",
    "HTTPSettings",
    "ModelSettings",
    "RaySettings",
    "Settings",
    "load_settings",
]
