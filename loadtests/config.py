"""Scenario files: what to load (target), with what (workload), how (load shape), judged how (SLO).

A scenario is a YAML file validated into :class:`Scenario` (unknown keys are errors).
Scenarios shipped with the package live in ``loadtests/scenarios/`` and are found by
name (``short_chat``) as well as by path. Every load step is bounded twice, by a
request count and by a duration, so a run always stops by itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from loadtests.safety import DEFAULT_BASE_URL, check_target

SCENARIO_DIR = Path(__file__).parent / "scenarios"


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetConfig(StrictModel):
    """The OpenAI-compatible endpoint under test."""

    base_url: str = Field(DEFAULT_BASE_URL, description="Base URL ending in /v1.")
    model: str | None = Field(None, description="Model id to send; None: the first of GET /models.")
    api_key_env: str | None = Field(
        None, description="Name of the environment variable holding the API key (never the key)."
    )
    timeout_s: PositiveFloat = Field(300.0, description="Longest one request may take.")

    @field_validator("base_url")
    @classmethod
    def _loopback_only(cls, value: str, info: ValidationInfo) -> str:
        allow_remote = bool((info.context or {}).get("allow_remote", False))
        return check_target(value, allow_remote=allow_remote)


class WorkloadConfig(StrictModel):
    """Which workload data to send and request options on top of it."""

    name: str = Field("short_chat", description="A file of loadtests/workloads/ or a path.")
    endpoint: Literal["chat", "completions"] | None = Field(
        None, description="Override the workload's endpoint."
    )
    max_tokens: PositiveInt | None = Field(None, description="Override the workload's max_tokens.")
    temperature: float = Field(0.0, ge=0, le=2)
    stream: bool = Field(True, description="Streaming is needed for TTFT and ITL.")
    extra_body: dict[str, Any] = Field(
        default_factory=dict,
        description="Merged into every request body, e.g. {ignore_eos: true} on vLLM servers.",
    )


class LoadConfig(StrictModel):
    """The load shape: a closed-loop concurrency sweep or open-loop Poisson rates."""

    mode: Literal["concurrency", "rate"] = "concurrency"
    concurrency: list[PositiveInt] = Field(
        default_factory=lambda: [1], description="Users per step (closed loop)."
    )
    rates: list[PositiveFloat] = Field(
        default_factory=list, description="Session arrivals per second per step (open loop)."
    )
    max_requests: PositiveInt = Field(100, description="Most requests started per step.")
    duration_s: PositiveFloat = Field(60.0, description="Longest a step issues new requests.")
    ramp_up_s: float = Field(0.0, ge=0, description="Users start / the rate rises over this time.")
    max_concurrency: PositiveInt | None = Field(
        None, description="Open loop: cap on requests in flight (arrivals wait beyond it)."
    )
    drain_timeout_s: float = Field(
        30.0, ge=0, description="After a step stops issuing, how long requests may finish."
    )
    warmup_requests: int = Field(
        0, ge=0, description="Requests sent one by one before the first step, not measured."
    )
    pause_s: float = Field(0.0, ge=0, description="Pause between steps.")
    stop_after_failed_steps: PositiveInt | None = Field(
        None, description="End a sweep after this many consecutive steps missed the SLO."
    )

    @model_validator(mode="after")
    def _steps_present(self) -> "LoadConfig":
        if self.mode == "concurrency" and not self.concurrency:
            raise ValueError("load.concurrency must list at least one user count")
        if self.mode == "rate" and not self.rates:
            raise ValueError("load.rates must list at least one rate in rate mode")
        return self

    def step_values(self) -> list[float]:
        """The swept values, in order: user counts or rates."""
        return [float(v) for v in (self.concurrency if self.mode == "concurrency" else self.rates)]


class SLOConfig(StrictModel):
    """Per-request latency objectives; a step holds when enough requests meet all of them.

    ``itl_ms`` is compared with the mean gap between a request's streamed chunks,
    ``tpot_ms`` with (end-to-end - TTFT) / (output tokens - 1).
    """

    ttft_ms: PositiveFloat | None = None
    itl_ms: PositiveFloat | None = None
    tpot_ms: PositiveFloat | None = None
    e2e_ms: PositiveFloat | None = None
    min_attainment: float = Field(
        0.9, gt=0, le=1, description="Fraction of requests that must meet every SLO."
    )
    max_error_rate: float = Field(0.01, ge=0, le=1, description="Highest tolerated error fraction.")

    def is_set(self) -> bool:
        """True when at least one latency objective is given."""
        return any(v is not None for v in (self.ttft_ms, self.itl_ms, self.tpot_ms, self.e2e_ms))


class Scenario(StrictModel):
    """One load test: target, workload, load shape and SLO."""

    name: str = Field(min_length=1)
    description: str = ""
    seed: int = 0
    target: TargetConfig = TargetConfig()
    workload: WorkloadConfig = WorkloadConfig()
    load: LoadConfig = LoadConfig()
    slo: SLOConfig = SLOConfig()


def find_scenario(name_or_path: str | Path) -> Path:
    """A scenario file by path, or by name among the packaged scenarios."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    for candidate in (SCENARIO_DIR / f"{name_or_path}.yaml", SCENARIO_DIR / str(name_or_path)):
        if candidate.is_file():
            return candidate
    known = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml")))
    raise FileNotFoundError(f"no scenario {str(name_or_path)!r} (packaged: {known})")


def load_scenario(
    name_or_path: str | Path,
    overrides: dict[str, Any] | None = None,
    *,
    allow_remote: bool = False,
) -> Scenario:
    """Read and validate a scenario, applying nested ``overrides`` (e.g. from the CLI)."""
    data = yaml.safe_load(find_scenario(name_or_path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{name_or_path}: a scenario is a mapping")
    merged = deep_merge(data, overrides or {})
    return Scenario.model_validate(merged, context={"allow_remote": allow_remote})


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in, nested mappings merged key by key."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
