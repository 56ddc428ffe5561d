"""GPU tier: the stack on a CUDA GPU (``make gpu-smoke``); skipped unless the settings say cuda.

The device comes from the settings as everywhere (``SERVING_MODEL__ENGINE__DEVICE=cuda``,
which ``make gpu-smoke`` and ``make run``/``make test`` with the GPU engine set), so on a
CPU machine every test here is skipped, saying why.
"""

import pytest

from serving.config.settings import load_settings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    device = load_settings().model.engine.device
    for item in items:
        if "/gpu/" in str(item.fspath):
            item.add_marker(pytest.mark.gpu)
            if device != "cuda":
                item.add_marker(pytest.mark.skip(reason="GPU tier: needs model.engine.device cuda (make gpu-smoke)"))
