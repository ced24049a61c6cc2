"""GraphiQL in a real browser: headless Chromium (Debian's package, driven by Playwright) against
a real uvicorn process in demo mode. The page must load without any request leaving the machine,
and its example must run as it is and update the demo assistant."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from app.graphql.ide import local_assets_available

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = ROOT / "test-artifacts" / "graphiql.png"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK),
        reason=f"{CHROMIUM} not found: install Debian's chromium package (.ci/run does)",
    ),
    pytest.mark.skipif(
        not local_assets_available(),
        reason="GraphiQL assets not installed in ide/node_modules: run `make assets` (needs npm)",
    ),
]


@dataclass
class Server:
    url: str
    demo: dict[str, str]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail("the server did not become healthy within 30 seconds")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """`python -m app demo`, then `python -m app serve`, in a scratch directory with DEMO=1."""
    port = free_port()
    env = {
        **os.environ,
        "DEMO": "1",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'assistants.db'}",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "PYTHONPATH": str(ROOT),
    }
    run = {"cwd": tmp_path, "env": env}
    subprocess.run([sys.executable, "-m", "app", "demo"], check=True, capture_output=True, **run)
    demo = json.loads((tmp_path / "data" / "demo.json").read_text())
    process = subprocess.Popen([sys.executable, "-m", "app", "serve"], **run)  # type: ignore[call-overload]
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(url, process)
        yield Server(url=url, demo=demo)
    finally:
        process.terminate()
        process.wait(timeout=10)


def leaves_the_machine(url: str) -> bool:
    """data: and blob: URLs stay in the browser; network URLs must name this machine."""
    parts = urlsplit(url)
    return parts.scheme not in {"data", "blob"} and parts.hostname not in LOCAL_HOSTS


def result_text(page: object, expected: list[str]) -> str:
    """Waits until GraphiQL's result pane shows every expected string; returns its text."""
    page.wait_for_function(  # type: ignore[attr-defined]
        """(expected) => {
            const pane = document.querySelector('.result-window');
            return pane && expected.every((s) => pane.innerText.includes(s));
        }""",
        arg=expected,
        timeout=20_000,
    )
    text: str = page.inner_text(".result-window")  # type: ignore[attr-defined]
    return text


def test_the_example_runs_in_chromium_without_leaving_the_machine(server: Server):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    requested: list[str] = []
    errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("request", lambda request: requested.append(request.url))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(f"{server.url}/graphql", wait_until="networkidle")
            assert page.get_attribute('meta[name="graphiql-assets"]', "content") == "local"
            headers_editor = page.locator(".graphiql-editor-tool .graphiql-editor:visible")
            assert server.demo["api_key"] in headers_editor.inner_text()
            page.click(".graphiql-execute-button")
            shown = result_text(page, [server.demo["assistant_id"], '"voiceId": "v2"'])
            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT))
        finally:
            browser.close()

    assert '"errors"' not in shown
    assert errors == [], "the browser console reported errors (a CSP violation?)"
    assert '"welcomeBanner": "Hi! How can I help?"' in shown
    left = [url for url in requested if leaves_the_machine(url)]
    assert left == [], f"requests left the machine: {left}"
    assert f"{server.url}/graphql" in requested

    stored = httpx.get(
        f"{server.url}/orgs/{server.demo['org_id']}/assistants/{server.demo['assistant_id']}",
        headers={"Authorization": f"Bearer {server.demo['api_key']}"},
    ).json()
    assert stored["config"]["tts"]["voice_id"] == "v2"
    assert stored["config"]["conversation"]["welcome_banner"] == "Hi! How can I help?"
