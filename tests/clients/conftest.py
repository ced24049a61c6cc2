"""Fixtures of the client tests: `node_clients` (node and tests/js/node_modules, or a skip)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.node_clients import NODE_MODULES, REQUIRED_ENV, missing_node


@pytest.fixture(scope="session")
def node_clients() -> Path:
    """tests/js/node_modules, once node and the packages are there; skips with the reason
    otherwise (fails instead under REQUIRE_NODE_CLIENTS=1)."""
    reason = missing_node()
    if reason is not None:
        if os.environ.get(REQUIRED_ENV) == "1":
            pytest.fail(f"{REQUIRED_ENV}=1 but {reason}")
        pytest.skip(f"{reason}: the node client tests are skipped")
    return NODE_MODULES
