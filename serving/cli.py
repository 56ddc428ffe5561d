"""Command-line interface: ``serving run`` serves the configured model locally on Ray Serve."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Sequence

from serving.config.settings import Settings, load_settings

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "serve" / "serve_config.yaml"
APP_NAME = "llm"


def _say(stage: str, message: str) -> None:
    print(f"[{stage}] {message}", file=sys.stderr, flush=True)


def ray_temp_dir(settings: Settings) -> str:
    """A project-specific Ray temp dir (short: Ray's socket paths have a length limit)."""
    if settings.ray.temp_dir is not None:
        return str(settings.ray.temp_dir)
    return os.path.join(tempfile.gettempdir(), f"llm-serving-ray-{os.getuid()}")


def start_ray(settings: Settings) -> None:
    """A local Ray with metrics on the fixed export port (as on KubeRay pods) and Serve's HTTP."""
    import ray
    from ray import serve

    ray.init(
        address="local",
        num_cpus=settings.ray.num_cpus,
        include_dashboard=settings.ray.include_dashboard,
        log_to_driver=False,
        object_store_memory=settings.ray.object_store_memory_mb * 1024**2,
        _temp_dir=ray_temp_dir(settings),
        _metrics_export_port=settings.ray.metrics_export_port,
        _system_config=(
            {} if settings.ray.worker_niceness is None else {"worker_niceness": settings.ray.worker_niceness}
        ),
    )
    serve.start(
        http_options={
            "host": settings.http.host,
            "port": settings.http.port,
            "request_timeout_s": settings.proxy_request_timeout_s(),  # after the app's deadlines
        }
    )


def wait_ready(base_url: str, timeout_s: float = 600.0) -> None:
    """Poll ``/ready`` until the model answers (a real one-token generation)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base_url}/ready", timeout=10) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{base_url}/ready did not answer within {timeout_s:.0f}s")


def banner(settings: Settings) -> str:
    """What a newcomer needs to call the server right away."""
    host = "127.0.0.1" if settings.http.host in ("0.0.0.0", "::") else settings.http.host
    base = f"http://{host}:{settings.http.port}"
    model = settings.model.id
    return f"""
Serving {model} at {base}/v1   (metrics: http://127.0.0.1:{settings.ray.metrics_export_port}/metrics)

  curl {base}/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{{"model": "{model}", "messages": [{{"role": "user", "content": "What is the capital of France?"}}]}}'

  python -c 'from openai import OpenAI
c = OpenAI(base_url="{base}/v1", api_key="none")
print(c.chat.completions.create(model="{model}", messages=[{{"role": "user", "content": "Hi!"}}]).choices[0].message.content)'

Press Ctrl-C to stop.
"""


def run(config: Path) -> int:
    """Serve until Ctrl-C."""
    from serving.model.prepare import resolve_model_path

    settings = load_settings(path=config)
    _say("config", f"{config} (model {settings.model.id}, topology {settings.http.topology})")
    resolve_model_path(settings.model)  # prepare the default model once, with progress, before Ray
    _say("ray", f"starting Ray (metrics on :{settings.ray.metrics_export_port}) and Serve (:{settings.http.port})")
    started = time.monotonic()
    start_ray(settings)
    from ray import serve

    from serving.ray_serve.app import build_app_from_settings

    _say("engine", "starting the model deployment (vLLM engine load)...")
    serve.run(build_app_from_settings(settings), name=APP_NAME, route_prefix="/", blocking=False)
    base_url = f"http://127.0.0.1:{settings.http.port}"
    wait_ready(base_url)
    _say("ready", f"in {time.monotonic() - started:.1f}s")
    print(banner(settings), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    _say("stop", "draining and shutting down")
    serve.shutdown()
    import ray

    ray.shutdown()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``serving`` / ``python -m serving``."""
    parser = argparse.ArgumentParser(prog="serving", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run_cmd = sub.add_parser("run", help="serve the configured model locally until Ctrl-C")
    run_cmd.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="Serve config or settings YAML")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args.config)
    return 2
