"""A replica's start and stop, in one place: logging, redaction, the engine, shutdown.

Every process-wide side effect of a replica happens here and nowhere else (no builder
installs a log filter or changes the environment): the log format and PII redaction
of every record, then (model replicas) vLLM's environment and the engine. Shutdown
goes through the ``Engine`` protocol.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from serving.config.settings import Settings
from serving.engine.vllm_engine import VLLMEngine, engine_environment
from serving.model.prepare import resolve_model_path
from serving.observability.logging import configure_logging
from serving.privacy.log_filter import install_redaction

logger = logging.getLogger(__name__)


def start_replica_logging(settings: Settings) -> None:
    """Every replica's first step: our log format, then PII redaction of every record."""
    configure_logging(settings.logging)
    install_redaction(settings.privacy)


async def start_engine(settings: Settings) -> VLLMEngine:
    """Prepare the model files (once per node) and start vLLM with Ray metrics.

    The replica process is the engine's: vLLM reads its knobs from the environment.
    """
    start_replica_logging(settings)
    model = settings.model
    os.environ.update(engine_environment(model.engine))
    engine = VLLMEngine(
        resolve_model_path(model),
        model_id=model.id,
        settings=model.engine,
        generation=model.generation,
        version=model.version,
        owned_by=model.owned_by,
        ray_metrics=True,
    )
    await engine.start()
    return engine


async def stop_replica(extensions: Any | None, engine: Any | None) -> None:
    """Close the extensions (flush feedback, audit), then shut the engine down."""
    try:
        if extensions is not None:
            extensions.close()
    finally:
        if engine is not None:
            await engine.shutdown()
