"""The panels of the Grafana dashboards: what each shows and the PromQL behind it.

Rendered to JSON by ``serving.observability.dashboards``. Every expression filters by
the dashboards' ``$model`` (our ``model`` label, vLLM's ``model_name``) or
``$application`` (Ray Serve's metrics) variable, and is executed against a real
Prometheus scraping a real stack in ``tests/integration/observability``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}  # the dashboards' datasource variable
_M = 'model=~"$model"'
_E = 'model_name=~"$model"'
_A = 'application=~"$application"'
_RI = "$__rate_interval"


@dataclass(frozen=True)
class Query:
    """One PromQL target of a panel and its legend."""

    expr: str
    legend: str = ""
    instant: bool = False


@dataclass(frozen=True)
class Panel:
    """One panel: a title, what it shows, its queries and how to draw them."""

    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"  # timeseries | stat | table
    width: int = 12
    height: int = 8
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    """A titled row of panels."""

    title: str
    panels: tuple[Panel, ...]


def _quantiles(metric: str, selector: str) -> tuple[Query, ...]:
    return tuple(
        Query(
            f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{{{selector}}}[{_RI}])))",
            f"p{int(q * 100)}",
        )
        for q in (0.5, 0.95, 0.99)
    )


SERVICE_OVERVIEW: tuple[Row, ...] = (
    Row(
        "Traffic and errors",
        (
            Panel(
                "Requests per second by outcome",
                "Finished requests (ray_serving_requests_total) by outcome.",
                (Query(f"sum by (outcome) (rate(ray_serving_requests_total{{{_M}}}[{_RI}]))", "{{outcome}}"),),
                unit="reqps",
            ),
            Panel(
                "Share of requests by status class",
                "Each HTTP status class as a fraction of all finished requests.",
                (
                    Query(
                        f"sum by (status_class) (rate(ray_serving_requests_total{{{_M}}}[{_RI}]))"
                        f" / ignoring (status_class) group_left ()"
                        f" sum (rate(ray_serving_requests_total{{{_M}}}[{_RI}]))",
                        "{{status_class}}",
                    ),
                ),
                unit="percentunit",
            ),
            Panel(
                "Availability error ratio (5xx or shed)",
                "The availability SLI's bad fraction over 5m and 1h (objective: 0.1 %).",
                (
                    Query(f"model:serving_availability_errors:ratio_rate5m{{{_M}}}", "{{model}} 5m"),
                    Query(f"model:serving_availability_errors:ratio_rate1h{{{_M}}}", "{{model}} 1h"),
                ),
                unit="percentunit",
            ),
            Panel(
                "SLO burn rate (1h)",
                "How fast each SLO spends its 30-day error budget; 14.4 over 1h pages.",
                (
                    Query(f"model:serving_availability_errors:ratio_rate1h{{{_M}}} / 0.001", "availability {{model}}"),
                    Query(f"model:serving_ttft_slow:ratio_rate1h{{{_M}}} / 0.01", "TTFT {{model}}"),
                ),
            ),
        ),
    ),
    Row(
        "Latency",
        (
            Panel(
                "Time to first token",
                "Arrival to first output token, queueing and prefill included. SLO: 99 % under 2.5 s.",
                _quantiles("ray_serving_time_to_first_token_seconds", _M),
                unit="s",
            ),
            Panel(
                "Inter-token latency",
                "Time between output tokens after the first.",
                _quantiles("ray_serving_inter_token_latency_seconds", _M),
                unit="s",
            ),
            Panel(
                "End-to-end latency (2xx)",
                "Arrival to last byte of successful requests.",
                _quantiles("ray_serving_request_duration_seconds", f'{_M}, status_class="2xx"'),
                unit="s",
            ),
            Panel(
                "Queue wait before the engine",
                "Time a request waited in the engine's queue before its first step.",
                _quantiles("ray_serving_queue_wait_seconds", _M),
                unit="s",
            ),
        ),
    ),
    Row(
        "Throughput and load",
        (
            Panel(
                "Tokens per second",
                "Prompt and output tokens of finished requests.",
                (
                    Query(f"sum (rate(ray_serving_prompt_tokens_total{{{_M}}}[{_RI}]))", "prompt"),
                    Query(f"sum (rate(ray_serving_completion_tokens_total{{{_M}}}[{_RI}]))", "output"),
                ),
            ),
            Panel(
                "In flight and queued",
                "Requests inside replicas, running and waiting in the engine, queued in Serve's router.",
                (
                    Query(f"sum (ray_serving_requests_in_flight{{{_M}}})", "in flight (replicas)"),
                    Query(f"sum (ray_vllm_num_requests_running{{{_E}}})", "running (engine)"),
                    Query(f"sum (ray_vllm_num_requests_waiting{{{_E}}})", "waiting (engine)"),
                    Query(f"sum (ray_serve_deployment_queued_queries{{{_A}}})", "queued (Serve)"),
                ),
            ),
            Panel(
                "Replicas vs autoscaling target",
                "Healthy replicas per deployment and the number the autoscaler wants.",
                (
                    Query(
                        f"sum by (deployment) (ray_serve_deployment_replica_healthy{{{_A}}})",
                        "healthy {{deployment}}",
                    ),
                    Query(
                        f"max by (deployment) (ray_serve_autoscaling_target_replicas{{{_A}}})",
                        "target {{deployment}}",
                    ),
                ),
            ),
            Panel(
                "KV cache usage",
                "Fraction of each engine's KV cache in use (alert: over 90 % for 10 minutes).",
                (Query(f"max by (ReplicaId) (ray_vllm_kv_cache_usage_perc{{{_E}}})", "{{ReplicaId}}"),),
                unit="percentunit",
                extra={"max": 1},
            ),
            Panel(
                "Prefix cache hit ratio",
                "Prompt tokens found in the engine's prefix cache, of all prompt tokens looked up.",
                (
                    Query(
                        f"sum (rate(ray_vllm_prefix_cache_hits_total{{{_E}}}[{_RI}]))"
                        f" / sum (rate(ray_vllm_prefix_cache_queries_total{{{_E}}}[{_RI}]))",
                        "hit ratio",
                    ),
                ),
                unit="percentunit",
            ),
            Panel(
                "Client disconnects per second",
                "Requests whose client went away mid-response (the engine request was aborted).",
                (Query(f"sum by (route) (rate(ray_serving_client_disconnects_total{{{_M}}}[{_RI}]))", "{{route}}"),),
                unit="reqps",
            ),
        ),
    ),
)

OPERATOR_VIEW: tuple[Row, ...] = (
    Row(
        "Models",
        (
            Panel(
                "Model versions",
                "Which version of each model every application serves (serving_model_info).",
                (Query(f"count by (model, version, application) (ray_serving_model_info{{{_M}}})", instant=True),),
                kind="table",
                extra={"transformations": [{"id": "organize", "options": {"renameByName": {"Value": "replicas"}}}]},
            ),
            Panel(
                "Replicas per model version",
                "Replicas by version over time: a rollout shows as one version replacing another.",
                (Query(f"count by (model, version) (ray_serving_model_info{{{_M}}})", "{{model}} v{{version}}"),),
            ),
        ),
    ),
    Row(
        "Usage",
        (
            Panel(
                "Requests in the time range",
                "Finished requests per model over the dashboard's time range.",
                (Query(f"sum by (model) (increase(ray_serving_requests_total{{{_M}}}[$__range]))", "{{model}}", True),),
                kind="stat",
                width=8,
            ),
            Panel(
                "Output tokens in the time range",
                "Output tokens served per model over the dashboard's time range.",
                (
                    Query(
                        f"sum by (model) (increase(ray_serving_completion_tokens_total{{{_M}}}[$__range]))",
                        "{{model}}",
                        True,
                    ),
                ),
                kind="stat",
                width=8,
            ),
            Panel(
                "Prompt tokens in the time range",
                "Prompt tokens processed per model over the dashboard's time range.",
                (
                    Query(
                        f"sum by (model) (increase(ray_serving_prompt_tokens_total{{{_M}}}[$__range]))",
                        "{{model}}",
                        True,
                    ),
                ),
                kind="stat",
                width=8,
            ),
            Panel(
                "Requests per second by model and outcome",
                "Traffic per model, split by outcome (ok, rate_limited, content_filter, ...).",
                (
                    Query(
                        f"sum by (model, outcome) (rate(ray_serving_requests_total{{{_M}}}[{_RI}]))",
                        "{{model}} {{outcome}}",
                    ),
                ),
                unit="reqps",
            ),
            Panel(
                "Refused requests by outcome (4xx)",
                "Requests refused as the client's problem: invalid, rate limited, filtered, aborted.",
                (
                    Query(
                        f'sum by (model, outcome) (rate(ray_serving_requests_total{{{_M}, status_class="4xx"}}[{_RI}]))',
                        "{{model}} {{outcome}}",
                    ),
                ),
                unit="reqps",
            ),
        ),
    ),
    Row(
        "Service levels",
        (
            Panel(
                "SLO error ratios (1h)",
                "Availability (5xx or shed; objective 0.1 %) and slow first tokens (over 2.5 s; objective 1 %).",
                (
                    Query(f"model:serving_availability_errors:ratio_rate1h{{{_M}}}", "availability {{model}}"),
                    Query(f"model:serving_ttft_slow:ratio_rate1h{{{_M}}}", "TTFT over 2.5 s {{model}}"),
                ),
                unit="percentunit",
            ),
            Panel(
                "Client disconnect share",
                "Fraction of requests whose client went away before the response ended.",
                (
                    Query(
                        f"sum by (model) (rate(ray_serving_client_disconnects_total{{{_M}}}[{_RI}]))"
                        f" / sum by (model) (rate(ray_serving_requests_total{{{_M}}}[{_RI}]))",
                        "{{model}}",
                    ),
                ),
                unit="percentunit",
            ),
        ),
    ),
)
