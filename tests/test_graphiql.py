"""GraphiQL at GET /graphql: pinned local assets (CDN only as a fallback), an example that runs,
the demo organisation filled in only in demo mode, and never a secret outside it."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.graphql import ide
from app.main import create_app
from app.settings import Settings

HTML = {"Accept": "text/html"}
CONFIG = re.compile(r'<script id="graphiql-config" type="application/json">(.*?)</script>', re.S)
needs_assets = pytest.mark.skipif(
    not ide.local_assets_available(), reason="GraphiQL assets not installed: run `make assets`"
)


def page_config(page: str) -> dict[str, Any]:
    match = CONFIG.search(page)
    assert match, "the page carries no GraphiQL configuration"
    config: dict[str, Any] = json.loads(match.group(1))
    return config


def asset_urls(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', page)


@pytest.fixture
def demo_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Writes data/demo.json (as `python -m app demo` does) in a scratch working directory."""
    monkeypatch.chdir(tmp_path)

    def write(demo: dict[str, str]) -> None:
        (tmp_path / "data").mkdir(exist_ok=True)
        (tmp_path / "data" / "demo.json").write_text(json.dumps(demo))

    return write


@pytest.fixture
async def demo_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with DEMO=1, on the same database as `client`."""
    application = create_app(settings.model_copy(update={"demo": True}))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


async def run_example(client: httpx.AsyncClient, config: dict[str, Any]) -> dict[str, Any]:
    """Sends the page's document, variables and headers the way GraphiQL does."""
    response = await client.post(
        config["url"],
        json={"query": config["query"], "variables": json.loads(config["variables"])},
        headers=json.loads(config["headers"]),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@needs_assets
async def test_the_page_loads_the_pinned_assets_from_this_server(client):
    response = await client.get("/graphql", headers=HTML)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    versions = json.loads((ide.IDE_DIR / "package.json").read_text())["dependencies"]
    assert asset_urls(response.text) == [
        f"/graphiql-assets/graphiql@{versions['graphiql']}/graphiql.min.css",
        f"/graphiql-assets/react@{versions['react']}/umd/react.production.min.js",
        f"/graphiql-assets/react-dom@{versions['react-dom']}/umd/react-dom.production.min.js",
        f"/graphiql-assets/graphiql@{versions['graphiql']}/graphiql.min.js",
    ]
    assert "https://" not in response.text
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "connect-src 'self';" in policy
    inline = re.search(r"<script>(.*?)</script>", response.text, re.S)
    assert inline
    digest = base64.b64encode(hashlib.sha256(inline.group(1).encode()).digest()).decode()
    assert f"script-src 'self' 'sha256-{digest}';" in policy
    for url in asset_urls(response.text):
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["content-type"].startswith(("text/javascript", "text/css")), url
        assert "immutable" in asset.headers["cache-control"]
        assert len(asset.content) > 1000


@pytest.mark.parametrize(
    "path",
    [
        "/graphiql-assets/graphiql@3.9.0/package.json",
        "/graphiql-assets/graphiql@0.0.1/graphiql.min.js",
        "/graphiql-assets/graphiql@3.9.0/../../package.json",
        "/graphiql-assets/graphiql@3.9.0/%2e%2e/%2e%2e/package.json",
        "/graphiql-assets/",
    ],
)
async def test_only_the_pinned_files_are_served(client, path):
    response = await client.get(path)
    assert response.status_code == 404
    assert "application/problem+json" in response.headers["content-type"]


async def test_without_local_assets_the_page_falls_back_to_the_cdn(client, tmp_path, monkeypatch):
    empty = tmp_path / "ide"
    empty.mkdir()
    (empty / "package.json").write_text((ide.IDE_DIR / "package.json").read_text())
    monkeypatch.setattr(ide, "IDE_DIR", empty)
    response = await client.get("/graphql", headers=HTML)
    assert response.status_code == 200
    urls = asset_urls(response.text)
    assert len(urls) == 4
    assert all(url.startswith("https://cdn.jsdelivr.net/npm/") for url in urls)
    assert 'name="graphiql-assets" content="cdn"' in response.text
    assert (
        "script-src 'self' https://cdn.jsdelivr.net 'sha256-"
        in (response.headers["content-security-policy"])
    )
    pinned = ide.pinned_versions()
    assert f"https://cdn.jsdelivr.net/npm/graphiql@{pinned['graphiql']}/graphiql.min.js" in urls


async def test_outside_demo_mode_the_page_holds_no_secret(client, org, make_assistant, demo_file):
    assistant = await make_assistant(org)
    demo_file({"org_id": org.org_id, "assistant_id": assistant["id"], "api_key": org.api_key})
    response = await client.get("/graphql?orgId=x", headers=HTML, follow_redirects=False)
    assert response.status_code == 200
    for secret in (org.api_key, org.org_id, assistant["id"], org.key_id):
        assert secret not in response.text
        assert secret not in str(response.url)
        assert all(secret not in value for value in response.headers.values())
    config = page_config(response.text)
    assert json.loads(config["headers"]) == {"authorization": "Bearer PASTE-YOUR-API-KEY-HERE"}
    assert json.loads(config["variables"]) == {
        "orgId": "c",
        "assistantId": "PASTE-AN-ASSISTANT-ID",
        "input": ide.EXAMPLE_INPUT,
    }
    assert "Headers tab" in config["query"]
    assert "Demo mode" not in config["query"]


async def test_the_example_runs_once_the_key_and_assistant_are_pasted(
    client, org, make_assistant, stored
):
    assistant = await make_assistant(org, config={"tts": {"model": "m1", "voice_id": "v1"}})
    config = page_config((await client.get("/graphql", headers=HTML)).text)
    pasted = {
        **config,
        "headers": config["headers"].replace("PASTE-YOUR-API-KEY-HERE", org.api_key),
        "variables": config["variables"].replace("PASTE-AN-ASSISTANT-ID", assistant["id"]),
    }
    body = await run_example(client, pasted)
    updated = body["data"]["updateAssistant"]
    assert (updated["id"], updated["version"]) == (assistant["id"], 2)
    assert updated["config"]["tts"] == {"model": "m1", "voiceId": "v2"}
    assert (updated["integrations"], updated["actions"]) == ([], [])
    row = await stored(assistant["id"])
    assert (row["tts_voice_id"], row["welcome_banner"]) == ("v2", "Hi! How can I help?")


async def test_in_demo_mode_the_example_runs_as_it_is(
    demo_client, org, make_assistant, demo_file, stored
):
    assistant = await make_assistant(org)
    demo_file({"org_id": org.org_id, "assistant_id": assistant["id"], "api_key": org.api_key})
    config = page_config((await demo_client.get("/graphql", headers=HTML)).text)
    assert json.loads(config["headers"]) == {"authorization": f"Bearer {org.api_key}"}
    assert json.loads(config["variables"]) == {
        "orgId": org.org_id,
        "assistantId": assistant["id"],
        "input": ide.EXAMPLE_INPUT,
    }
    assert config["query"].startswith("# Demo mode")
    body = await run_example(demo_client, config)
    assert "errors" not in body
    assert body["data"]["updateAssistant"]["id"] == assistant["id"]
    row = await stored(assistant["id"])
    assert (row["tts_voice_id"], row["welcome_banner"]) == ("v2", "Hi! How can I help?")


async def test_demo_mode_without_a_demo_file_shows_placeholders(demo_client, demo_file):
    config = page_config((await demo_client.get("/graphql", headers=HTML)).text)
    assert json.loads(config["headers"]) == {"authorization": "Bearer PASTE-YOUR-API-KEY-HERE"}
    assert json.loads(config["variables"])["assistantId"] == "PASTE-AN-ASSISTANT-ID"


async def test_values_cannot_close_the_configuration_script(demo_client, demo_file):
    evil = "</script><script>alert(1)</script>"
    demo_file({"org_id": "o", "assistant_id": "a", "api_key": evil})
    page = (await demo_client.get("/graphql", headers=HTML)).text
    assert evil not in page
    assert json.loads(page_config(page)["headers"]) == {"authorization": f"Bearer {evil}"}


async def test_the_publish_and_rollback_tabs_run_once_the_key_and_assistant_are_pasted(
    client, org, make_assistant
):
    assistant = await make_assistant(org, name="First")
    config = page_config((await client.get("/graphql", headers=HTML)).text)
    main, publish, rollback = config["tabs"]
    assert (main["query"], main["variables"]) == (config["query"], config["variables"])

    def pasted(tab: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": config["url"],
            "query": tab["query"],
            "headers": tab["headers"].replace("PASTE-YOUR-API-KEY-HERE", org.api_key),
            "variables": tab["variables"].replace("PASTE-AN-ASSISTANT-ID", assistant["id"]),
        }

    first = await run_example(client, pasted(publish))
    assert first["data"]["publishAssistant"]["number"] == 1, first
    assert (await run_example(client, pasted(main)))["data"]["updateAssistant"]["version"] == 2
    second = await run_example(client, pasted(publish))
    assert second["data"]["publishAssistant"]["number"] == 2
    back = await run_example(client, pasted(rollback))
    pinned = back["data"]["pinEnvironment"]
    assert (pinned["name"], pinned["release"]["number"]) == ("production", 1)
    read = await client.get(
        f"/orgs/c/assistants/{assistant['id']}/environments/production", headers=org.headers
    )
    assert (read.headers["etag"], read.json()["assistant"]["name"]) == ('"1"', "First")
