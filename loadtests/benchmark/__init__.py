"""Side-by-side benchmark: the same scenario against vLLM's server, Ray Serve LLM and this stack.

    config.py             the benchmark file (compare.yaml): scenario, model, targets
    process.py            start a target in its own process group, wait, stop cleanly
    runner.py             rounds of start-measure-stop, one target at a time, rotated
    compare.py            medians, spread and ratios across rounds; comparison.md
    ray_serve_llm_app.py  the Ray Serve LLM target (ray.serve.llm.build_openai_app)
    cli.py                ``serving-loadtest benchmark``
"""
