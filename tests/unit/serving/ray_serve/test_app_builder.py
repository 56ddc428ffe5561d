"""The Serve application built from settings carries every deployment option (no Ray needed)."""

from serving.config.settings import load_settings
from serving.ray_serve.app import INGRESS_DEPLOYMENT, MODEL_DEPLOYMENT, build_app_from_settings

ARGS = {
    "http": {"request_timeout_s": 60},  # a stopping replica must outwait it (graceful 77 >= 60)
    "model": {
        "deployment": {
            "max_ongoing_requests": 48,
            "max_queued_requests": 96,
            "graceful_shutdown_timeout_s": 77,
            "num_cpus": 0.5,
            "autoscaling": {"min_replicas": 1, "max_replicas": 3, "target_ongoing_requests": 12, "upscale_delay_s": 4},
        }
    }
}


def _deployment(app):
    return app._bound_deployment


def test_colocated_app_is_one_model_deployment_with_options() -> None:
    deployment = _deployment(build_app_from_settings(load_settings(ARGS)))
    assert deployment.name == MODEL_DEPLOYMENT
    config = deployment._deployment_config
    assert config.max_ongoing_requests == 48
    assert config.max_queued_requests == 96
    assert config.graceful_shutdown_timeout_s == 77
    assert config.autoscaling_config.max_replicas == 3
    assert config.autoscaling_config.target_ongoing_requests == 12
    assert config.autoscaling_config.upscale_delay_s == 4
    assert deployment.ray_actor_options["num_cpus"] == 0.5


def test_split_app_is_ingress_bound_to_model_deployment() -> None:
    settings = load_settings({**ARGS, "http": {"request_timeout_s": 60, "topology": "split", "ingress_replicas": 2}})
    ingress = _deployment(build_app_from_settings(settings))
    assert ingress.name == INGRESS_DEPLOYMENT
    assert ingress._deployment_config.num_replicas == 2
    model_app = ingress.init_args[1]
    assert model_app._bound_deployment.name == MODEL_DEPLOYMENT
    assert model_app._bound_deployment._deployment_config.autoscaling_config.max_replicas == 3
