"""Rate limits: per API key, per client address without a proven key;
429 RATE_LIMITED with Retry-After and RateLimit-* headers on both transports."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from limits import parse
from limits.strategies import MovingWindowRateLimiter

from app.http.ratelimit import QuietMemoryStorage
from app.settings import Settings
from tests.helpers.rate_limits import assert_limited
from tests.helpers.rows import count_assistants

LIMIT = "5/minute"


@pytest.fixture
async def limited(make_client):
    return await make_client(rate_limit=LIMIT)


async def test_a_key_gets_its_limit_then_429(limited, org, db):
    for remaining in [4, 3, 2, 1, 0]:
        response = await limited.get("/orgs/c/assistants", headers=org.headers)
        assert response.status_code == 200
        assert response.headers["ratelimit-limit"] == "5"
        assert response.headers["ratelimit-remaining"] == str(remaining)
        assert response.headers["ratelimit-policy"] == "5;w=60"
    response = await limited.post("/orgs/c/assistants", json={"name": "x"}, headers=org.headers)
    assert_limited(response)
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["code"], body["title"]) == (
        429,
        "RATE_LIMITED",
        "Too Many Requests",
    )
    assert body["detail"].startswith("too many requests: at most 5 per 60 seconds")
    assert await count_assistants(db) == 0


async def test_each_key_has_its_own_bucket(limited, org, new_key):
    second = await new_key(org)
    for _ in range(5):
        assert (await limited.get("/orgs/c/assistants", headers=org.headers)).status_code == 200
    assert_limited(await limited.get("/orgs/c/assistants", headers=org.headers))
    response = await limited.get("/orgs/c/assistants", headers=second.headers)
    assert response.status_code == 200


async def test_graphql_is_limited_with_a_json_error(limited, org, db):
    query = {"query": '{ assistants(orgId: "c") { totalCount } }'}
    for _ in range(5):
        response = await limited.post("/graphql", json=query, headers=org.headers)
        assert response.status_code == 200
        assert "ratelimit-remaining" in response.headers
    mutation = {"query": 'mutation { createAssistant(orgId: "c", input: {name: "x"}) { id } }'}
    response = await limited.post("/graphql", json=mutation, headers=org.headers)
    assert_limited(response)
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "RATE_LIMITED"}
    assert await count_assistants(db) == 0


async def test_requests_without_a_key_count_per_address(limited):
    for _ in range(5):
        response = await limited.get("/orgs/c/assistants")
        assert response.status_code == 401
        assert "ratelimit-remaining" in response.headers
    response = await limited.get("/orgs/c/assistants")
    assert_limited(response)
    assert response.json()["code"] == "RATE_LIMITED"


async def test_invented_keys_buy_no_extra_requests(limited):
    for i in range(5):
        headers = {"Authorization": f"Bearer ak_invented_{i}"}
        assert (await limited.get("/orgs/c/assistants", headers=headers)).status_code == 401
    response = await limited.get("/orgs/c/assistants", headers={"Authorization": "Bearer ak_new"})
    assert_limited(response)


async def test_a_proven_key_is_not_held_back_by_its_address(limited, org):
    assert (await limited.get("/orgs/c/assistants", headers=org.headers)).status_code == 200
    for _ in range(5):
        await limited.get("/orgs/c/assistants")
    assert_limited(await limited.get("/orgs/c/assistants"))
    response = await limited.get("/orgs/c/assistants", headers=org.headers)
    assert response.status_code == 200
    assert response.headers["ratelimit-remaining"] == "3"


async def test_errors_carry_the_headers_too(limited, org):
    response = await limited.get("/orgs/c/assistants/nope", headers=org.headers)
    assert response.status_code == 404
    assert response.headers["ratelimit-remaining"] == "4"


async def test_health_and_public_avatars_are_exempt(limited):
    for _ in range(8):
        response = await limited.get("/healthz")
        assert response.status_code == 200
        assert "ratelimit-limit" not in response.headers
        assert (await limited.get("/readyz")).status_code == 200
        assert (await limited.get("/avatars/unknown")).status_code == 404


async def test_the_default_is_500_per_minute(client, org):
    assert Settings(_env_file=None).rate_limit == "500/minute"  # type: ignore[call-arg]
    response = await client.get("/orgs/c/assistants", headers=org.headers)
    assert response.headers["ratelimit-limit"] == "500"
    assert response.headers["ratelimit-remaining"] == "499"


async def test_no_thread_is_started_per_request(client, org, monkeypatch):
    """limits' own storage starts a Timer thread whenever none is running; ours does not (one
    starts when the storage is made, with the middleware, on the first request)."""
    assert (await client.get("/orgs/c/assistants", headers=org.headers)).status_code == 200
    started: list[threading.Thread] = []
    original = threading.Thread.start

    def counting_start(self: threading.Thread) -> None:
        if isinstance(self, threading.Timer):
            started.append(self)
        original(self)

    monkeypatch.setattr(threading.Thread, "start", counting_start)
    for _ in range(4):
        response = await client.get("/orgs/c/assistants", headers=org.headers)
        assert response.status_code == 200
        await asyncio.sleep(0.02)  # longer than limits' 10 ms timer
    assert started == []


def test_expired_entries_are_still_cleaned_up(monkeypatch):
    storage = QuietMemoryStorage()
    limiter = MovingWindowRateLimiter(storage)
    item = parse("3/second")
    assert [limiter.hit(item, "k") for _ in range(4)] == [True, True, True, False]
    [key] = storage.events
    monkeypatch.setattr(QuietMemoryStorage, "CLEANUP_SECONDS", 0.0)
    time.sleep(1.05)  # the window passes
    assert limiter.hit(item, "k")
    assert len(storage.events[key]) == 1  # the three expired entries are gone


# CREATE_ASSISTANT_LIMIT: creations per organisation, both transports.

CREATE = 'mutation($name: String!) { createAssistant(orgId: "c", input: {name: $name}) { id } }'


async def create_rest(client, org, body):
    return await client.post("/orgs/c/assistants", json=body, headers=org.headers)


async def create_graphql(client, org, name):
    body = {"query": CREATE, "variables": {"name": name}}
    return await client.post("/graphql", json=body, headers=org.headers)


async def test_creations_beyond_the_limit_are_429_on_both_transports(make_client, org, db):
    client = await make_client(create_assistant_limit="2/hour")
    invalid = await create_rest(client, org, {"name": ""})  # refused: spends nothing
    assert (invalid.status_code, invalid.json()["code"]) == (400, "VALIDATION_FAILED")
    assert (await create_rest(client, org, {"name": "one"})).status_code == 201
    created = await create_graphql(client, org, "two")
    assert created.status_code == 200
    assert created.json()["data"]["createAssistant"]["id"]

    refused = await create_rest(client, org, {"name": "three"})
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    retry_after = int(refused.headers["retry-after"])
    assert 3500 < retry_after <= 3600
    problem = refused.json()
    assert (problem["code"], problem["status"], problem["retry_after"]) == (
        "RATE_LIMITED",
        429,
        retry_after,
    )
    assert problem["detail"].startswith(
        "too many assistants created: at most 2 per 3600 seconds in an organisation"
    )

    refused = await create_graphql(client, org, "three")
    assert refused.status_code == 429
    assert 3500 < int(refused.headers["retry-after"]) <= 3600
    body = refused.json()
    assert body["data"] is None  # createAssistant is non-null
    [error] = body["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["extensions"]["retryAfter"] == int(refused.headers["retry-after"])
    assert await count_assistants(db) == 2  # nothing created beyond the limit


async def test_the_creation_limit_counts_per_organisation(make_client, org, other_org, db):
    client = await make_client(create_assistant_limit="1/hour")
    assert (await create_rest(client, org, {"name": "one"})).status_code == 201
    assert (await create_rest(client, org, {"name": "two"})).status_code == 429
    assert (await create_rest(client, other_org, {"name": "one"})).status_code == 201
    # other requests of the organisation are not held back
    listed = await client.get("/orgs/c/assistants", headers=org.headers)
    assert (listed.status_code, len(listed.json())) == (200, 1)
    assert await count_assistants(db) == 2


async def test_the_creation_limit_is_off_by_default(client, org, db):
    assert Settings(_env_file=None).create_assistant_limit is None  # type: ignore[call-arg]
    for i in range(12):
        assert (await create_rest(client, org, {"name": f"a{i}"})).status_code == 201
    assert await count_assistants(db) == 12


def test_bad_limit_settings_are_refused_naming_the_setting():
    for name, value in [
        ("create_assistant_limit", "ten an hour"),
        ("rate_limit_storage", "memcached://localhost"),
        ("forwarded_allow_ips", "10.0.0.0/8, proxy.local"),
    ]:
        with pytest.raises(ValueError, match=name):
            Settings(_env_file=None, **{name: value})  # type: ignore[call-arg]
