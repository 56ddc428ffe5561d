"""Cold start of ``python -m serving run``: fresh model cache vs warm, time to the first answer.

    python -m loadtests.benchmark.cold_start --out loadtests/results/<date>-cold-start.json

"Fresh" uses an empty model cache (the packaged GGUF is converted first); "warm"
reuses it. The clock runs from process start to the first 200 from ``/ready`` (a
real one-token generation through the whole stack). Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from loadtests.machine import describe_machine


def time_to_ready(env: dict[str, str], port: int, timeout_s: float = 900.0) -> float:
    """Seconds from starting the run command to its first 200 from ``/ready``."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "serving", "run"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        while time.monotonic() - started < timeout_s:
            if process.poll() is not None:
                raise RuntimeError(f"serving run exited with {process.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as response:
                    if response.status == 200:
                        return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError("not ready in time")
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    """Measure fresh and warm starts; write JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--port", type=int, default=18140)
    parser.add_argument("--warm-runs", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cold-start-") as tmp:
        env = {
            "SERVING_HTTP__PORT": str(args.port),
            "SERVING_RAY__METRICS_EXPORT_PORT": str(args.port + 1),
            "SERVING_RAY__TEMP_DIR": f"{tmp}/ray",
            "SERVING_MODEL__CACHE_DIR": f"{tmp}/models",
            "HF_HUB_OFFLINE": "1",
        }
        fresh = time_to_ready(env, args.port)
        warm = [time_to_ready(env, args.port) for _ in range(args.warm_runs)]
    result: dict[str, Any] = {
        "command": "python -m serving run",
        "fresh_cache_s": round(fresh, 1),
        "warm_cache_s": [round(w, 1) for w in warm],
        "machine": describe_machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
