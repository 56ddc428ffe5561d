"""The benchmark file: which scenario, which model, which targets and how to start each.

A target is any command that serves an OpenAI-compatible API on 127.0.0.1:PORT. Its
command, environment and ready path may use these placeholders:

    {python}      the running interpreter      {model}      the model folder
    {model_name}  the served model id          {port}       the target's port
    {tmp}         a short private temp folder for this start (e.g. Ray's temp dir)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_validator

from loadtests.config import StrictModel

BENCHMARK_DIR = Path(__file__).parent
DEFAULT_CONFIG = BENCHMARK_DIR / "compare.yaml"


class TargetSpec(StrictModel):
    """One server to benchmark and how to start it."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    command: list[str] = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    port: int = Field(ge=1, le=65535)
    api_prefix: str = "/v1"
    ready_path: str = Field("/v1/models", description="GET path that answers 200 when ready.")

    def base_url(self) -> str:
        """The OpenAI base URL of the running target (always loopback)."""
        return f"http://127.0.0.1:{self.port}{self.api_prefix}"

    def render(self, values: dict[str, str]) -> tuple[list[str], dict[str, str], str]:
        """Command, environment and ready URL with placeholders filled in."""
        command = [part.format(**values) for part in self.command]
        env = {key: value.format(**values) for key, value in self.env.items()}
        ready_url = f"http://127.0.0.1:{self.port}{self.ready_path.format(**values)}"
        return command, env, ready_url


class BenchmarkConfig(StrictModel):
    """A side-by-side benchmark: one scenario against several targets, in rounds."""

    name: str = "compare"
    description: str = ""
    scenario: str = Field("short_chat", description="Packaged scenario name or path.")
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="Nested scenario overrides (e.g. load.concurrency)."
    )
    model: Path | None = Field(None, description="Model folder; None: the prepared default model.")
    model_name: str = "SmolLM2-135M-Instruct"
    repeats: PositiveInt = Field(3, description="Rounds; every round runs every target once.")
    rotate: bool = Field(True, description="Round r starts with target r mod n (interleaving).")
    ready_timeout_s: PositiveFloat = 600.0
    stop_timeout_s: PositiveFloat = 60.0
    settle_s: float = Field(5.0, ge=0, description="Pause after a target stops (let the CPU calm).")
    baseline: str | None = Field(None, description="Target ratios divide by (default: the first).")
    targets: list[TargetSpec] = Field(min_length=1)

    @field_validator("targets")
    @classmethod
    def _distinct(cls, targets: list[TargetSpec]) -> list[TargetSpec]:
        names = [t.name for t in targets]
        if len(set(names)) != len(names):
            raise ValueError(f"target names must be distinct: {names}")
        return targets

    @model_validator(mode="after")
    def _baseline_known(self) -> "BenchmarkConfig":
        if self.baseline is not None and self.baseline not in {t.name for t in self.targets}:
            raise ValueError(f"baseline {self.baseline!r} is not a target")
        return self

    def baseline_name(self) -> str:
        """The target the comparison divides by."""
        return self.baseline or self.targets[0].name

    def select(self, names: list[str] | None) -> "BenchmarkConfig":
        """This config restricted to ``names`` (in the config's order)."""
        if not names:
            return self
        unknown = set(names) - {t.name for t in self.targets}
        if unknown:
            raise ValueError(f"unknown targets {sorted(unknown)}; known: "
                             f"{[t.name for t in self.targets]}")
        targets = [t for t in self.targets if t.name in names]
        baseline = self.baseline if self.baseline in names else None
        return self.model_copy(update={"targets": targets, "baseline": baseline})


def load_benchmark(path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                   ) -> BenchmarkConfig:
    """Read and validate a benchmark file (the packaged compare.yaml by default)."""
    data = yaml.safe_load(Path(path or DEFAULT_CONFIG).read_text()) or {}
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return BenchmarkConfig.model_validate(data)
