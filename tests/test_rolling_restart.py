"""Deploys that drop nothing (ops/README.md): two real servers over one PostgreSQL and one
Redis behind a real HAProxy (ops/haproxy.cfg) are restarted one after the other while updates
and reads run through the balancer: every answer is a 2xx and every acknowledged write is
stored (tests/helpers/rolling_restart.py). `make bench` runs the same drill three times
(bench/deploy.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import Settings
from tests.helpers.factories import MakeAssistant, Org
from tests.helpers.redis_server import RedisServer
from tests.helpers.rolling_restart import drill

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("settings", ["postgres"], indirect=True),  # one shared database
]


async def test_a_rolling_restart_under_load_drops_nothing(
    settings: Settings,
    redis: RedisServer,
    org: Org,
    make_assistant: MakeAssistant,
    tmp_path: Path,
) -> None:
    assistants = [(await make_assistant(org, name=f"A{n}"))["id"] for n in range(4)]
    outcome = drill(
        settings,
        tmp_path,
        redis_url=redis.url,
        org_id=org.org_id,
        api_key=org.api_key,
        assistants=assistants,
    )
    print(f"\nrolling restart: {outcome}")
    assert outcome.failures == []
    assert outcome.lost == []
    assert outcome.writes > 20  # the writers kept writing through both restarts
    assert len(outcome.restarts) == 2
