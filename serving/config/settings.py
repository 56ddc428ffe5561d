"""The settings tree: YAML (a Ray Serve config's application args) + environment overrides.

Every section is a strict pydantic model (``extra="forbid"``): a typo'd key is an
error that names the key's path. Environment variables override the file with the
prefix ``SERVING_`` and ``__`` between levels, e.g. ``SERVING_MODEL__ENGINE__MAX_NUM_SEQS=16``.
This module is the only place that reads ``os.environ`` for settings.
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from serving.config.base import StrictModel
from serving.config.context import ContextSettings
from serving.config.embeddings import EmbeddingsSettings
from serving.config.feedback import FeedbackSettings
from serving.config.gateway import GatewaySettings
from serving.config.moderation import ModerationSettings
from serving.config.privacy import PrivacySettings

ENV_PREFIX = "SERVING_"
ENV_NESTED_DELIMITER = "__"
DEFAULT_MODEL_ID = "SmolLM2-135M-Instruct"


# Engine precision per device when `model.engine.dtype` is not set. CPU: float32, the
# only precision whose greedy answers equal the float32 reference (the agreement test in
# tests/e2e/test_reference_agreement.py); bf16 passes only vLLM's looser top-5 closeness
# and on CPUs without avx512_bf16 it is also slower. CUDA: bfloat16, vLLM's usual choice.
DEFAULT_DTYPE: dict[str, str] = {"cpu": "float32", "cuda": "bfloat16"}
# Eager mode per device when `model.engine.enforce_eager` is not set. CPU: eager, torch.compile
# costs ~40 s at every start on a small box. CUDA: CUDA graphs (vLLM's default), faster decode.
DEFAULT_ENFORCE_EAGER: dict[str, bool] = {"cpu": True, "cuda": False}


class EngineSettings(StrictModel):
    """vLLM engine knobs (continuous batching, KV cache, precision)."""

    max_num_seqs: PositiveInt = Field(64, description="Most sequences batched in one engine step.")
    max_num_batched_tokens: PositiveInt | None = Field(
        None, description="Token budget of one engine step; None lets vLLM choose."
    )
    max_model_len: PositiveInt = Field(2048, description="Context window: prompt + output tokens.")
    kv_cache_gib: PositiveFloat = Field(
        1.0, description="KV cache size in GiB on CPU (vLLM's kv_cache_memory_bytes)."
    )
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="Fraction of GPU memory vLLM may use (GPU only)."
    )
    device: Literal["cpu", "cuda"] = Field("cpu", description="Where the engine runs.")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] | None = Field(
        None,
        description="Engine precision. None: the device's default (see DEFAULT_DTYPE): float32 "
        "on CPU, where bf16 flips the small default model's greedy answers (README, "
        "'Precision'), bfloat16 on CUDA. auto: the model folder's torch_dtype.",
    )
    enforce_eager: bool | None = Field(
        None,
        description="Skip torch.compile and CUDA graphs: faster start, slower decode. None: the "
        "device's default (see DEFAULT_ENFORCE_EAGER): eager on CPU, CUDA graphs on CUDA.",
    )
    enable_prefix_caching: bool = True
    tensor_parallel_size: PositiveInt = Field(1, description="GPUs one layer is split over (vLLM workers).")
    pipeline_parallel_size: PositiveInt = Field(1, description="Stages the layers are split into, each TP GPUs.")
    seed: int = 0
    scheduling_policy: Literal["fcfs", "priority"] = Field(
        "fcfs",
        description="Order of waiting requests: fcfs (arrival), or priority (a request's `priority`, "
        "lower first, then arrival); requests with a priority other than 0 need priority.",
    )
    multiprocessing: bool = Field(
        True, description="Run the engine core in its own process (overlaps HTTP work with compute)."
    )
    max_restarts: NonNegativeInt = Field(
        3,
        description="How many times a replica restarts a dead engine core in its own process "
        "(requests meanwhile get 503 with Retry-After; no Ray rescheduling, no lost routes) before "
        "its health check fails and Serve replaces the replica. 0: Serve replaces it at the first "
        "failure. Engines spanning several GPUs (the Ray executor) are always replaced by Serve.",
    )

    @model_validator(mode="after")
    def _dtype_runs_on_device(self) -> "EngineSettings":
        if self.device == "cpu" and self.dtype == "float16":
            raise ValueError(
                "dtype float16 does not run on vLLM's CPU backend; use float32 (the CPU default) or bfloat16"
            )
        return self

    @property
    def resolved_dtype(self) -> str:
        """The dtype given to vLLM: the setting, or the device's default when it is None."""
        return self.dtype if self.dtype is not None else DEFAULT_DTYPE[self.device]

    @property
    def resolved_enforce_eager(self) -> bool:
        """The enforce_eager given to vLLM: the setting, or the device's default when it is None."""
        return self.enforce_eager if self.enforce_eager is not None else DEFAULT_ENFORCE_EAGER[self.device]

    @property
    def world_size(self) -> int:
        """vLLM workers (one accelerator each) of one engine: tensor x pipeline parallel size."""
        return self.tensor_parallel_size * self.pipeline_parallel_size

    @property
    def distributed_executor_backend(self) -> str | None:
        """``ray`` when one engine spans several GPUs (its workers are Ray actors in the
        replica's placement group, as in Ray Serve LLM); None lets vLLM choose otherwise."""
        return "ray" if self.device == "cuda" and self.world_size > 1 else None


class AutoscalingSettings(StrictModel):
    """Ray Serve autoscaling of the model deployment."""

    min_replicas: int = Field(1, ge=0)
    max_replicas: PositiveInt = 1
    initial_replicas: int | None = Field(None, ge=0)
    target_ongoing_requests: PositiveFloat = 32
    upscale_delay_s: float = Field(10.0, ge=0)
    downscale_delay_s: float = Field(60.0, ge=0)
    look_back_period_s: PositiveFloat = 10.0
    metrics_interval_s: PositiveFloat = 2.0

    @model_validator(mode="after")
    def _bounds(self) -> "AutoscalingSettings":
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must not exceed max_replicas")
        return self

    def to_ray(self) -> dict[str, Any]:
        """The dict Ray Serve's ``autoscaling_config`` takes."""
        return self.model_dump(exclude_none=True)


class DeploymentSettings(StrictModel):
    """Ray Serve deployment options of the model deployment."""

    autoscaling: AutoscalingSettings = AutoscalingSettings()
    # Above the gateway's admission capacity (engine running + waiting), so that a full
    # model answers 429 from the app instead of Serve's own 503 for backpressure.
    max_ongoing_requests: PositiveInt = Field(1280, description="Requests one replica holds at once.")
    max_queued_requests: int = Field(
        -1, ge=-1, description="Requests queued per caller before Serve rejects (-1: unbounded)."
    )
    health_check_period_s: PositiveFloat = 10.0
    health_check_timeout_s: PositiveFloat = 30.0
    graceful_shutdown_wait_loop_s: PositiveFloat = 2.0
    graceful_shutdown_timeout_s: PositiveFloat = Field(
        300.0,
        description="Longest a draining replica waits for in-flight streams "
        "(>= http.request_timeout_s: the settings refuse less, no stream is cut).",
    )
    num_cpus: PositiveFloat = Field(1.0, description="CPUs Ray reserves for the replica actor itself.")
    num_gpus: float | None = Field(
        None,
        ge=0,
        description="GPUs one model replica uses. None: 0 on CPU, the engine's tensor x pipeline "
        "parallel size on CUDA. Above 1 it must equal that size: the GPUs are then reserved as "
        "one placement group bundle per vLLM worker (ModelSettings.replica_gpus).",
    )
    placement_strategy: Literal["STRICT_PACK", "PACK", "SPREAD"] = Field(
        "STRICT_PACK",
        description="Ray placement group strategy of a replica spanning several GPUs. STRICT_PACK: "
        "all its GPUs on one node (NVLink/PCIe for tensor parallelism; what the k8s manifests "
        "size a worker pod for); PACK: one node if possible; SPREAD: across nodes.",
    )
    worker_num_cpus: float = Field(
        1.0, ge=0, description="CPUs reserved beside each GPU in a multi-GPU replica's bundles."
    )


class GenerationDefaults(StrictModel):
    """Sampling defaults for parameters a request leaves out.

    Precedence, lowest first: OpenAI's (temperature 1, top_p 1), the model folder's
    generation_config.json (read like vLLM's ``--generation-config auto``), these
    overrides, the client's explicit value (which always wins, 0 included).
    """

    temperature: float | None = Field(
        None, ge=0.0, le=2.0, description="Overrides the folder's temperature; None: keep it."
    )
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="Overrides the folder's top_p; None: keep it.")
    max_tokens: PositiveInt | None = Field(
        None, description="Overrides the folder's max_new_tokens (chat completions); None: keep it."
    )
    default_max_tokens: PositiveInt | None = Field(
        512,
        description="Output cap of a chat completion that sends neither max_tokens nor "
        "max_completion_tokens, when neither max_tokens above nor the folder sets one; "
        "never more than the context leaves. None: up to the context window. "
        "/v1/completions keeps OpenAI's default of 16.",
    )


class ModelSettings(StrictModel):
    """The served model: where its files are, how it is named, how it runs."""

    id: str = Field(DEFAULT_MODEL_ID, min_length=1, description="The model id clients send.")
    path: Path | None = Field(
        None,
        description="A local Hugging Face model folder. None: the packaged SmolLM2 default, "
        "prepared once into cache_dir.",
    )
    cache_dir: Path = Field(
        Path("~/.cache/llm-serving/models"), description="Where prepared models are kept."
    )
    version: str = Field("1", min_length=1, description="Model version, for dashboards and feedback.")
    owned_by: str = "llm-serving"
    engine: EngineSettings = EngineSettings()
    generation: GenerationDefaults = GenerationDefaults()
    deployment: DeploymentSettings = DeploymentSettings()

    @model_validator(mode="after")
    def _gpus_match_the_engine(self) -> "ModelSettings":
        wanted, world = self.deployment.num_gpus, self.engine.world_size
        if self.engine.device == "cuda" and wanted is not None:
            if wanted == 0:
                raise ValueError("model.deployment.num_gpus is 0 but model.engine.device is cuda: leave it unset")
            if world > 1 and wanted != world:
                raise ValueError(
                    f"model.deployment.num_gpus={wanted:g} but tensor_parallel_size "
                    f"{self.engine.tensor_parallel_size} x pipeline_parallel_size "
                    f"{self.engine.pipeline_parallel_size} needs {world} GPUs per replica: "
                    f"set num_gpus: {world} or leave it unset"
                )
        return self

    @property
    def replica_gpus(self) -> float:
        """GPUs one model replica uses (its vLLM workers' GPUs when it spans several)."""
        if self.deployment.num_gpus is not None:
            return self.deployment.num_gpus
        return float(self.engine.world_size) if self.engine.device == "cuda" else 0.0


class HTTPSettings(StrictModel):
    """Where Ray Serve's HTTP proxy listens, and the ingress topology."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    topology: Literal["colocated", "split"] = Field(
        "colocated",
        description="colocated: the OpenAI routes live in the model deployment (one hop). "
        "split: a separate ingress deployment streams from the model deployment via a handle.",
    )
    ingress_num_cpus: PositiveFloat = Field(0.25, description="CPUs per ingress replica (split).")
    ingress_replicas: PositiveInt = Field(1, description="Ingress replicas (split).")
    request_timeout_s: PositiveFloat = Field(
        300.0, description="Longest a request may run before it is cut (generation deadline)."
    )


class RaySettings(StrictModel):
    """How the local runner starts Ray (KubeRay starts Ray itself on Kubernetes)."""

    metrics_export_port: int = Field(8080, ge=1, le=65535)
    num_cpus: PositiveInt | None = None
    object_store_memory_mb: PositiveInt = 200
    temp_dir: Path | None = Field(None, description="Ray's temp dir; None: a project-specific one.")
    include_dashboard: bool = False
    worker_niceness: int | None = Field(
        None,
        ge=0,
        le=19,
        description="Niceness of Ray's worker processes (replicas, the engine core, Serve's proxy). "
        "None: Ray's own default, 15, which makes the engine yield the CPU to every other process "
        "on the machine. 0 shares it fairly: measured faster when other work competes for the "
        "cores, no faster on a quiet machine (loadtests/results/2026-12-02-speed*).",
    )


class LoggingSettings(StrictModel):
    """Structured request logs. Prompt and completion text are never logged."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_logs: bool = True


# Seconds Serve's proxy deadline leaves beyond the app's body and generation deadlines.
PROXY_TIMEOUT_MARGIN_S = 20.0


class Settings(BaseSettings):
    """The whole settings tree of one serving application."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="forbid",
        frozen=True,
    )

    model: ModelSettings = ModelSettings()
    http: HTTPSettings = HTTPSettings()
    ray: RaySettings = RaySettings()
    logging: LoggingSettings = LoggingSettings()
    gateway: GatewaySettings = GatewaySettings()
    feedback: FeedbackSettings = FeedbackSettings()
    moderation: ModerationSettings = ModerationSettings()
    privacy: PrivacySettings = PrivacySettings()
    context: ContextSettings = ContextSettings()
    embeddings: EmbeddingsSettings = EmbeddingsSettings()

    @model_validator(mode="after")
    def _stopping_replicas_finish_their_streams(self) -> "Settings":
        """Rules that span sections: a stopping replica waits at least as long as a request
        may run (``http.request_timeout_s``), or Serve cuts streams at every scale-down,
        redeploy and node drain."""
        budget = self.http.request_timeout_s
        waits = {
            "model.deployment.graceful_shutdown_timeout_s": self.model.deployment.graceful_shutdown_timeout_s,
            "gateway.drain.graceful_shutdown_timeout_s": self.gateway.drain.graceful_shutdown_timeout_s,
        }
        for key, value in waits.items():
            if value < budget:
                raise ValueError(
                    f"{key}={value:g} is shorter than http.request_timeout_s={budget:g}: "
                    "Serve would cut streams when it stops a replica"
                )
        return self

    def proxy_request_timeout_s(self) -> int:
        """Ray Serve's proxy deadline (``http_options.request_timeout_s``), after the app's own.

        A request may spend ``gateway.hygiene.body_read_timeout_s`` arriving, then generate
        for ``http.request_timeout_s``; ``PROXY_TIMEOUT_MARGIN_S`` covers queueing and the
        last write. The app's OpenAI-format 408/504 thus always comes before the proxy cuts
        the connection (``serve_config.yaml`` and the k8s generator use this value).
        """
        return math.ceil(
            self.http.request_timeout_s + self.gateway.hygiene.body_read_timeout_s + PROXY_TIMEOUT_MARGIN_S
        )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file (the file arrives as init kwargs).
        return (env_settings, init_settings)


def deep_merge(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """``patch`` over ``base``: mappings merge key by key, anything else replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_settings(
    values: Mapping[str, Any] | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
) -> Settings:
    """Validate settings from a mapping or a YAML file, with environment overrides.

    A YAML file may be either a bare settings tree or a Ray Serve config file, in which
    case the first application's ``args`` are the settings tree.
    """
    data: dict[str, Any] = dict(values or {})
    if path is not None:
        data = {**settings_from_yaml(Path(path)), **data}
    return Settings(**data)


def settings_from_yaml(path: Path) -> dict[str, Any]:
    """The settings mapping inside a YAML file (bare tree or Serve config)."""
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    if "applications" in loaded:
        apps = loaded["applications"] or []
        if not apps:
            raise ValueError(f"{path}: Serve config has no applications")
        loaded = apps[0].get("args") or {}
    return loaded
