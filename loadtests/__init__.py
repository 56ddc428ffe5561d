"""Load tests for OpenAI-compatible endpoints: a load generator, reports and a benchmark.

The package answers "how many concurrent chat users does this deployment hold within
our latency SLO?" with one command (``serving-loadtest run SCENARIO``) and compares the
stack against vLLM's own server and Ray Serve LLM (``serving-loadtest benchmark``).

Layout:
    config.py      scenario files (target, workload, load shape, SLO) as strict models
    safety.py      the loopback-only guard on target URLs
    workloads/     prompt data (YAML) and the sessions that turn it into requests
    sse.py         a server-sent-events parser
    client.py      one streaming request over aiohttp, measured
    shapes.py      closed-loop (users) and open-loop (Poisson) drivers
    stats.py       percentiles, throughput, goodput, SSE-buffering detection
    runner.py      runs a scenario's steps and collects the results
    progress.py    live progress line and optional Prometheus client metrics
    report.py      JSON, CSV and Markdown output; plots.py draws the PNGs
    benchmark/     side-by-side benchmark of vLLM, Ray Serve LLM and this stack
    locustfile.py  the same chat traffic for teams that use Locust
    many_clients.py  N concurrent streams on the official openai client (retries, 5xx, health)
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
