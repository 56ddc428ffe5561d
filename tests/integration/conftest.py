"""Integration tier: real Ray Serve + real vLLM on a tiny model.

The fixtures (ray_serve_instance, tiny_model_dir, deploy_stack, stack) live in
tests/conftest.py so the e2e tier shares the same Ray instance.
"""

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
