"""The settings tree: strict keys, environment overrides, the Serve config as source."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from serving.config.settings import AutoscalingSettings, Settings, load_settings, settings_from_yaml

REPO = Path(__file__).resolve().parents[4]
SERVE_CONFIG = REPO / "deploy" / "serve" / "serve_config.yaml"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("SERVING_"):
            monkeypatch.delenv(key)


def test_typo_is_an_error_naming_the_key_path() -> None:
    with pytest.raises(ValidationError) as info:
        load_settings({"model": {"engine": {"max_num_seq": 8}}})
    assert info.value.errors()[0]["loc"] == ("model", "engine", "max_num_seq")
    assert info.value.errors()[0]["type"] == "extra_forbidden"


def test_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVING_MODEL__ENGINE__MAX_NUM_SEQS", "8")
    monkeypatch.setenv("SERVING_HTTP__PORT", "9001")
    settings = load_settings({"model": {"engine": {"max_num_seqs": 32}}, "http": {"port": 8000}})
    assert settings.model.engine.max_num_seqs == 8
    assert settings.http.port == 9001


def test_bad_environment_value_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVING_MODEL__ENGINE__MAX_NUM_SEQS", "lots")
    with pytest.raises(ValidationError) as info:
        load_settings({})
    assert info.value.errors()[0]["loc"] == ("model", "engine", "max_num_seqs")


def test_serve_config_is_the_settings_source() -> None:
    args = settings_from_yaml(SERVE_CONFIG)
    settings = load_settings(path=SERVE_CONFIG)
    assert settings.model.id == args["model"]["id"]
    assert settings.model.engine.max_model_len == args["model"]["engine"]["max_model_len"]
    assert settings.ray.metrics_export_port == 8080


def test_serve_config_passes_rays_own_schema() -> None:
    import yaml
    from ray.serve.schema import ServeDeploySchema

    ServeDeploySchema.model_validate(yaml.safe_load(SERVE_CONFIG.read_text()))


def test_serve_config_bounds_the_queue_and_the_proxy_deadline() -> None:
    """Serve's queue is bounded (above admission capacity: 429 before Serve's 503) and its
    proxy deadline outlasts the app's (the client gets the app's OpenAI 504, not a cut)."""
    import yaml

    config = yaml.safe_load(SERVE_CONFIG.read_text())
    settings = load_settings(path=SERVE_CONFIG)
    capacity = settings.model.engine.max_num_seqs + settings.gateway.admission.max_waiting
    queued = settings.model.deployment.max_queued_requests
    assert queued > 0, "max_queued_requests must be bounded (-1: a flood piles up in the proxy)"
    assert queued >= capacity and settings.model.deployment.max_ongoing_requests > capacity
    proxy_s = config["http_options"]["request_timeout_s"]
    assert proxy_s >= settings.proxy_request_timeout_s()
    assert settings.proxy_request_timeout_s() >= (
        settings.http.request_timeout_s + settings.gateway.hygiene.body_read_timeout_s
    )


def test_autoscaling_bounds_checked_and_accepted_by_ray() -> None:
    from ray.serve.config import AutoscalingConfig

    with pytest.raises(ValidationError):
        AutoscalingSettings(min_replicas=3, max_replicas=2)
    config = AutoscalingConfig(**AutoscalingSettings(min_replicas=1, max_replicas=4).to_ray())
    assert config.max_replicas == 4 and config.target_ongoing_requests == 32


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.http.port = 1  # type: ignore[misc]


def test_generation_defaults_leave_the_folder_alone_and_cap_chat_at_512() -> None:
    generation = Settings().model.generation
    assert (generation.temperature, generation.top_p, generation.max_tokens) == (None, None, None)
    assert generation.default_max_tokens == 512


@pytest.mark.parametrize(
    "values,key",
    [
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"default_max_tokens": 0}, "default_max_tokens"),
        ({"temprature": 0.5}, "temprature"),
    ],
)
def test_generation_defaults_are_range_checked_and_strict(values: dict, key: str) -> None:
    with pytest.raises(ValidationError) as info:
        load_settings({"model": {"generation": values}})
    assert info.value.errors()[0]["loc"] == ("model", "generation", key)


def test_generation_defaults_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVING_MODEL__GENERATION__TEMPERATURE", "0")
    monkeypatch.setenv("SERVING_MODEL__GENERATION__DEFAULT_MAX_TOKENS", "128")
    generation = load_settings({}).model.generation
    assert (generation.temperature, generation.default_max_tokens) == (0.0, 128)


# --- the engine's device defaults and its GPUs per replica -----------------------------


def test_the_shipped_cpu_config_stays_eager_explicitly() -> None:
    engine = settings_from_yaml(SERVE_CONFIG)["model"]["engine"]
    assert engine["enforce_eager"] is True  # explicit for CPU (torch.compile costs ~40 s at start)
    assert load_settings(path=SERVE_CONFIG).model.engine.resolved_enforce_eager is True


def test_eager_and_precision_resolve_per_device_when_unset() -> None:
    cpu, cuda = load_settings().model.engine, load_settings({"model": {"engine": {"device": "cuda"}}}).model.engine
    assert cpu.enforce_eager is None and cpu.resolved_enforce_eager is True and cpu.resolved_dtype == "float32"
    assert cuda.enforce_eager is None and cuda.resolved_enforce_eager is False and cuda.resolved_dtype == "bfloat16"


def test_gpu_engine_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """What `make run` with the GPU engine exports (serve_config.yaml's explicit eager overridden)."""
    monkeypatch.setenv("SERVING_MODEL__ENGINE__DEVICE", "cuda")
    monkeypatch.setenv("SERVING_MODEL__ENGINE__ENFORCE_EAGER", "false")
    engine = load_settings(path=SERVE_CONFIG).model.engine
    assert engine.device == "cuda" and engine.resolved_enforce_eager is False


@pytest.mark.parametrize(
    ("engine", "gpus"),
    [({}, 0.0), ({"device": "cuda"}, 1.0), ({"device": "cuda", "tensor_parallel_size": 8}, 8.0),
     ({"device": "cuda", "tensor_parallel_size": 4, "pipeline_parallel_size": 2}, 8.0)],
)  # fmt: skip
def test_gpus_per_replica_default_to_the_engines_world_size(engine: dict, gpus: float) -> None:
    assert load_settings({"model": {"engine": engine}}).model.replica_gpus == gpus


@pytest.mark.parametrize(
    ("engine", "num_gpus", "message"),
    [({"device": "cuda", "tensor_parallel_size": 2}, 1, "needs 2 GPUs per replica: set num_gpus: 2"),
     ({"device": "cuda"}, 0, "num_gpus is 0 but model.engine.device is cuda")],
)  # fmt: skip
def test_gpus_that_do_not_match_the_engine_are_refused(engine: dict, num_gpus: float, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        load_settings({"model": {"engine": engine, "deployment": {"num_gpus": num_gpus}}})


def test_a_fractional_gpu_stays_possible_for_a_small_model() -> None:
    model = load_settings({"model": {"engine": {"device": "cuda"}, "deployment": {"num_gpus": 0.5}}}).model
    assert model.replica_gpus == 0.5


def test_a_stopping_replica_must_outwait_the_request_deadline() -> None:
    for section in ({"model": {"deployment": {"graceful_shutdown_timeout_s": 299}}},
                    {"gateway": {"drain": {"graceful_shutdown_timeout_s": 299}}}):
        with pytest.raises(ValidationError, match="would cut streams"):
            load_settings(section)
    # Lowering the deadline with them is fine.
    load_settings({"http": {"request_timeout_s": 30},
                   "model": {"deployment": {"graceful_shutdown_timeout_s": 30}},
                   "gateway": {"drain": {"graceful_shutdown_timeout_s": 30}}})


def test_shipped_defaults_and_every_overlay_keep_the_cross_section_rules() -> None:
    from serving.tools import render_serve_config as gen

    settings = [Settings(), load_settings(path=SERVE_CONFIG)]
    found = gen.targets(REPO)
    assert {t.name for t in found} >= {"base", "cpu-dev", "gpu-prod"}
    for target in found:
        config = gen.serve_config_for(target, REPO)
        settings.append(gen.validate_args(config["applications"][0]["args"]))
    for s in settings:
        assert s.model.deployment.graceful_shutdown_timeout_s >= s.http.request_timeout_s
        assert s.gateway.drain.graceful_shutdown_timeout_s >= s.http.request_timeout_s
        assert s.proxy_request_timeout_s() > s.http.request_timeout_s + s.gateway.hygiene.body_read_timeout_s
