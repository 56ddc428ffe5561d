"""Unit-tier fixtures: apps built with ``tests.unit.apps.build_app`` are closed after each test."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.unit import apps


@pytest.fixture(autouse=True)
def _built_apps(tmp_path: Path) -> Iterator[None]:
    apps._TMP.append(tmp_path)
    try:
        yield
    finally:
        apps._TMP.pop()
        apps.close_all()
