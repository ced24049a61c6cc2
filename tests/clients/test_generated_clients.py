"""Typed clients generated from the live `/openapi.json`, as a new user would make them:
`openapi-python-client generate` writes a complete client without one warning, and that client
(its `AuthenticatedClient`, against a real uvicorn server with a real API key) creates an
assistant, updates it partially (what it does not send stays as stored) and lists assistants;
`openapi-typescript` turns the same document into types without a warning. The TypeScript half
needs node and tests/js/node_modules (`make install`): skipped without them, failed instead
when REQUIRE_NODE_CLIENTS=1."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.openapi import OPERATIONS
from tests.helpers.server_process import Server

GENERATOR = Path(sys.executable).parent / "openapi-python-client"
PACKAGE = "assistants_api_client"
# what the generator prints when it leaves something out
WARNINGS = ("warning", "unable", "cannot", "skipping", "error")


@pytest.fixture
def live(settings, tmp_path: Path) -> Iterator[Server]:
    with Server(settings, tmp_path, workers=1) as server:
        yield server


async def live_document(live: Server, tmp_path: Path) -> Path:
    async with httpx.AsyncClient(base_url=live.base_url, timeout=30) as http:
        response = await http.get("/openapi.json")
    assert response.status_code == 200
    path = tmp_path / "openapi.json"
    path.write_text(response.text)
    return path


@pytest.fixture
def generated_package(tmp_path: Path) -> Iterator[Path]:
    """Where the generated package goes; importable while the test runs, forgotten after."""
    folder = tmp_path / "generated"
    folder.mkdir()
    sys.path.insert(0, str(folder))
    try:
        yield folder / PACKAGE
    finally:
        sys.path.remove(str(folder))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def generate_python_client(document: Path, package: Path) -> str:
    assert GENERATOR.exists(), f"{GENERATOR} is missing (requirements.lock pins it)"
    # its post-hooks format the code with ruff, which sits beside it in the virtualenv
    env = {**os.environ, "PATH": f"{GENERATOR.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        [str(GENERATOR), "generate", "--path", str(document), "--output-path", str(package),
         "--meta", "none"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


async def test_openapi_python_client_generates_a_working_client_without_a_warning(
    live, org, stored, tmp_path, generated_package
):
    output = generate_python_client(await live_document(live, tmp_path), generated_package)
    said = [line for line in output.splitlines() if any(w in line.lower() for w in WARNINGS)]
    assert said == [], output
    operations = {p.stem for p in (generated_package / "api" / "default").glob("*.py")}
    assert {"create_assistant", "update_assistant", "list_assistants", "get_assistant",
            "delete_assistant", "upload_avatar"} <= operations  # fmt: skip
    assert len(operations - {"__init__"}) == len(OPERATIONS)  # every route, none dropped

    client_module = importlib.import_module(PACKAGE)
    api = importlib.import_module(f"{PACKAGE}.api.default")
    models = importlib.import_module(f"{PACKAGE}.models")
    create = importlib.import_module(f"{api.__name__}.create_assistant")
    update = importlib.import_module(f"{api.__name__}.update_assistant")
    listing = importlib.import_module(f"{api.__name__}.list_assistants")

    async with client_module.AuthenticatedClient(base_url=live.base_url, token=org.api_key) as c:
        body = models.AssistantCreate(
            name="Generated",
            config=models.ConfigPatch(
                instructions="Be brief.", tts=models.TtsPatch(model="tts-1", voice_id="v1")
            ),
        )
        created = await create.asyncio_detailed("c", client=c, body=body)
        assert created.status_code == 201, created.content
        assistant = created.parsed
        assert isinstance(assistant, models.Assistant)
        assert assistant.name == "Generated"
        before = await stored(assistant.id)

        patch = models.AssistantPatch(config=models.ConfigPatch(tts=models.TtsPatch(voice_id="v2")))
        assert patch.to_dict() == {"config": {"tts": {"voice_id": "v2"}}}  # absent stays absent
        updated = await update.asyncio_detailed("c", assistant.id, client=c, body=patch)
        assert updated.status_code == 200, updated.content
        assert isinstance(updated.parsed, models.Assistant)
        assert updated.parsed.config.tts.voice_id == "v2"
        assert updated.parsed.config.tts.model == "tts-1"
        assert updated.parsed.config.instructions == "Be brief."

        listed = await listing.asyncio("c", client=c)
        assert [(a.id, a.name) for a in listed] == [(assistant.id, "Generated")]
        assert all(isinstance(a, models.Assistant) for a in listed)

    after = await stored(assistant.id)
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {"tts_voice_id", "version", "updated_at"}
    assert (after["tts_voice_id"], after["tts_model"], after["name"]) == (
        "v2",
        "tts-1",
        "Generated",
    )


async def test_openapi_typescript_generates_types_without_a_warning(node_clients, live, tmp_path):
    command = [
        shutil.which("node") or "node",
        str(node_clients / "openapi-typescript" / "bin" / "cli.js"),
    ]
    document = await live_document(live, tmp_path)
    out = tmp_path / "api.d.ts"
    done = await asyncio.to_thread(
        subprocess.run,
        [*command, str(document), "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert [line for line in output.splitlines() if "warn" in line.lower() or "⚠" in line] == []
    types = out.read_text()
    ids: list[Any] = [
        op["operationId"]
        for item in json.loads(document.read_text())["paths"].values()
        for op in item.values()
    ]
    for operation_id in ids:
        assert f"    {operation_id}: {{" in types, operation_id
    assert 'patch: operations["updateAssistant"];' in types
