"""End-to-end tier: the real default model through the whole stack."""

from typing import Callable

import pytest

from tests.conftest import Stack


# The shipped settings, sized down for the test box; precision and generation defaults
# are left as a user gets them.
DEFAULT_STACK_OVERRIDES = {
    "model": {
        "engine": {"max_model_len": 2048, "max_num_seqs": 16, "kv_cache_gib": 0.5},
        "deployment": {"num_cpus": 0.5},
    }
}


@pytest.fixture
def default_stack(deploy_stack: Callable[..., Stack], default_model_dir) -> Stack:
    """The stack serving the real default model (SmolLM2-135M-Instruct)."""
    return deploy_stack(DEFAULT_STACK_OVERRIDES, base="default")
