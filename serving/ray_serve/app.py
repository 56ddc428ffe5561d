"""The Serve application builder (``import_path: serving.ray_serve.app:build_app``)."""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from serving.config.settings import ModelSettings, Settings, load_settings
from serving.core.extension import deployments, ingress_options, model_options
from serving.extensions import FEATURES
from serving.ray_serve.deployments import ModelDeployment, OpenAIIngress, OpenAIModelServer
from serving.ray_serve.placement import replica_placement_options

MODEL_DEPLOYMENT = "model"
INGRESS_DEPLOYMENT = "ingress"


def deployment_options(model: ModelSettings) -> dict[str, Any]:
    """Serve deployment options of the model deployment, from settings (placement included:
    ``serving.ray_serve.placement``)."""
    deployment = model.deployment
    return dict(
        autoscaling_config=deployment.autoscaling.to_ray(),
        max_ongoing_requests=deployment.max_ongoing_requests,
        max_queued_requests=deployment.max_queued_requests,
        health_check_period_s=deployment.health_check_period_s,
        health_check_timeout_s=deployment.health_check_timeout_s,
        graceful_shutdown_wait_loop_s=deployment.graceful_shutdown_wait_loop_s,
        graceful_shutdown_timeout_s=deployment.graceful_shutdown_timeout_s,
        **replica_placement_options(model),
    )


def build_app_from_settings(settings: Settings) -> Application:
    """The Serve application for validated settings (colocated or split topology)."""
    options = deployment_options(settings.model)
    options.update(model_options(FEATURES, settings))  # e.g. sticky routing's request router
    extra = deployments(FEATURES, settings)  # the features' own deployments (embeddings, classifier), if enabled
    if settings.http.topology == "colocated":
        return serve.deployment(OpenAIModelServer, name=MODEL_DEPLOYMENT, **options).bind(settings, **extra)
    model = serve.deployment(ModelDeployment, name=MODEL_DEPLOYMENT, **options).bind(settings)
    ingress = serve.deployment(
        OpenAIIngress,
        name=INGRESS_DEPLOYMENT,
        num_replicas=settings.http.ingress_replicas,
        max_ongoing_requests=max(1000, options["max_ongoing_requests"] * 4),
        **ingress_options(FEATURES, settings),  # the gateway's drain
        ray_actor_options={"num_cpus": settings.http.ingress_num_cpus},
    )
    return ingress.bind(settings, model, **extra)


def build_app(args: dict[str, Any] | None = None) -> Application:
    """Serve's application builder: ``args`` is the settings tree (env overrides apply)."""
    return build_app_from_settings(load_settings(args or {}))
