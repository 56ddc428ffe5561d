"""Serve one model with Ray Serve LLM's own OpenAI app (``ray.serve.llm.build_openai_app``).

The benchmark starts this script as a target process: it starts a private local Ray
(``address="local"``, its own temp dir), serves the app on 127.0.0.1:PORT, prints
``READY`` and blocks until SIGTERM/SIGINT, then shuts Serve and Ray down. Engine
settings mirror the other targets (float32, eager, max_model_len, KV cache size).

    python -m loadtests.benchmark.ray_serve_llm_app --model DIR --model-name NAME --port 18111
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="local Hugging Face model folder")
    parser.add_argument("--model-name", required=True, help="the model id clients send")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--temp-dir", default=f"/tmp/ray-loadtests-{os.getpid()}")
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--max-num-seqs", type=int, default=64)
    parser.add_argument("--kv-cache-gib", type=float, default=1.0)
    parser.add_argument("--num-cpus", type=int, default=4,
                        help="logical CPUs given to Ray (engine bundle 1 + ingress 1 + spare)")
    parser.add_argument("--stream-batching-interval-ms", type=float, default=None,
                        help="Ray Serve LLM's experimental stream batching interval")
    return parser.parse_args(argv)


def llm_config(args: argparse.Namespace):
    """The LLMConfig of the served model (CPU, one replica)."""
    from ray.serve.llm import LLMConfig

    experimental = {}
    if args.stream_batching_interval_ms is not None:
        experimental["stream_batching_interval_ms"] = args.stream_batching_interval_ms
    return LLMConfig(
        model_loading_config={"model_id": args.model_name, "model_source": args.model},
        accelerator_config={"kind": "cpu"},
        # one logical CPU for the engine's placement group (the default takes 2, leaving
        # nothing for the OpenAI ingress replica on a 2-core machine)
        placement_group_config={"bundles": [{"CPU": 1}]},
        engine_kwargs={
            "max_model_len": args.max_model_len,
            "max_num_seqs": args.max_num_seqs,
            "dtype": "float32",
            "enforce_eager": True,
            "kv_cache_memory_bytes": int(args.kv_cache_gib * 1024**3),
        },
        deployment_config={"num_replicas": 1, "max_ongoing_requests": args.max_num_seqs},
        experimental_configs=experimental,
        log_engine_metrics=False,
    )


def main(argv: list[str] | None = None) -> int:
    """Start Ray and the app, block until a signal, then shut down."""
    args = parse_args(argv)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(max(1, int(args.kv_cache_gib))))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import ray
    from ray import serve
    from ray.serve.llm import build_openai_app

    started = time.monotonic()
    ray.init(address="local", _temp_dir=args.temp_dir, num_cpus=args.num_cpus,
             include_dashboard=False, log_to_driver=True, object_store_memory=200 * 1024**2)
    stop = threading.Event()  # handlers after ray.init, which installs its own
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": args.port})
        app = build_openai_app({"llm_configs": [llm_config(args)]})
        serve.run(app, name="ray-serve-llm", route_prefix="/", blocking=False)
        print(f"READY in {time.monotonic() - started:.1f}s on 127.0.0.1:{args.port}", flush=True)
        while not stop.wait(1.0):
            pass
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
