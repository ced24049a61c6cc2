"""GraphiQL at `GET /graphql`: the page, its example, and the pinned browser assets.

The assets (React, ReactDOM and GraphiQL's self-contained UMD build) are npm packages pinned in
`ide/package.json` and installed into `ide/node_modules` by `make install`; the app serves the
few files the page needs under `/graphiql-assets/{package}@{version}/{file}`, the same shape as
the CDN the page falls back to when they are missing. With local assets, loading the page makes
no request outside this server.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from functools import cache
from pathlib import Path
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from app.demo import DEMO_FILE
from app.settings import Settings

IDE_DIR = Path(__file__).resolve().parents[2] / "ide"
ASSETS_PREFIX = "/graphiql-assets"
CDN = "https://cdn.jsdelivr.net/npm"
SCRIPTS = (
    ("react", "umd/react.production.min.js"),
    ("react-dom", "umd/react-dom.production.min.js"),
    ("graphiql", "graphiql.min.js"),
)
STYLES = (("graphiql", "graphiql.min.css"),)

EXAMPLE_QUERY = """\
# Welcome to the assistants API.
#
# 1. Paste your API key in the Headers tab below:
#      {"authorization": "Bearer <your API key>"}
#    (`python -m app orgs create NAME` makes one.)
# 2. Put an assistant's id in the Variables tab;
#    orgId "c" is your key's own organisation.
# 3. Run with the ▶ button or Ctrl+Enter.
#    The book icon (Docs) explains every field.

mutation UpdateAssistant(
  $orgId: ID!
  $assistantId: ID!
  $input: UpdateAssistantInput!
) {
  updateAssistant(orgId: $orgId, assistantId: $assistantId, input: $input) {
    id
    name
    version
    updatedAt
    config {
      language
      model
      tts { model voiceId }
      conversation { threadMode welcomeBanner suggestedMessages }
    }
    integrations { id integrationId enabled config }
    actions { id actionId name position }
  }
}
"""
DEMO_NOTE = """\
# Demo mode: the demo organisation's id, assistant
# and API key are already in the Variables and
# Headers tabs, so this example runs as it is.
#
"""
EXAMPLE_INPUT = {
    "config": {
        "tts": {"voiceId": "v2"},
        "conversation": {"welcomeBanner": "Hi! How can I help?"},
    }
}
# two more tabs: publish the draft to production, and roll production back (docs/releases.md)
PUBLISH_QUERY = """\
# Publish the draft as it is now as the next release, and
# point the `production` environment at it. The draft's
# version does not change. Run it twice, with an edit in
# between, then roll back in the next tab.

mutation Publish($orgId: ID!, $assistantId: ID!) {
  publishAssistant(
    orgId: $orgId
    assistantId: $assistantId
    environment: "production"
    note: "published from GraphiQL"
  ) {
    number
    version
    createdAt
  }
}
"""
ROLLBACK_QUERY = """\
# Roll `production` back to an earlier release: one call.
# Set `release` in the Variables tab; add `expectedRelease`
# to refuse (CONFLICT) if someone pinned it meanwhile.

mutation RollBack($orgId: ID!, $assistantId: ID!, $release: Int!) {
  pinEnvironment(
    orgId: $orgId
    assistantId: $assistantId
    environment: "production"
    release: $release
  ) {
    name
    updatedAt
    release { number version note assistant }
  }
}
"""
PLACEHOLDER_ASSISTANT = "PASTE-AN-ASSISTANT-ID"
PLACEHOLDER_KEY = "PASTE-YOUR-API-KEY-HERE"


@cache
def pinned_versions() -> dict[str, str]:
    """The exact versions of `ide/package.json`: what `npm ci` installs and the CDN serves."""
    package = json.loads((IDE_DIR / "package.json").read_text())
    return dict(package["dependencies"])


def installed_file(package: str, file: str) -> Path | None:
    """The local copy of one asset, when the pinned version is installed."""
    root = IDE_DIR / "node_modules" / package
    try:
        installed = json.loads((root / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None
    path = root / file
    return path if installed == pinned_versions()[package] and path.is_file() else None


def local_assets_available() -> bool:
    return all(installed_file(package, file) for package, file in (*SCRIPTS, *STYLES))


def asset_urls(*, local: bool) -> tuple[list[str], list[str]]:
    """(scripts, stylesheets): served by this app when `local`, else by the CDN."""
    base = ASSETS_PREFIX if local else CDN
    versions = pinned_versions()

    def url(package: str, file: str) -> str:
        return f"{base}/{package}@{versions[package]}/{file}"

    return [url(*asset) for asset in SCRIPTS], [url(*asset) for asset in STYLES]


async def serve_asset(request: Request) -> Response:
    """One of the page's pinned files; anything else under the prefix is a 404."""
    wanted = request.path_params["path"]
    for package, file in (*SCRIPTS, *STYLES):
        if wanted == f"{package}@{pinned_versions()[package]}/{file}":
            path = installed_file(package, file)
            if path is not None:
                headers = {"Cache-Control": "public, max-age=31536000, immutable"}
                return FileResponse(path, headers=headers)
    raise HTTPException(404, "no such GraphiQL asset")


routes = [Route(ASSETS_PREFIX + "/{path:path}", serve_asset, methods=["GET", "HEAD"])]


def read_demo() -> dict[str, Any] | None:
    """The demo organisation written by `python -m app demo`, if any."""
    try:
        demo = json.loads(DEMO_FILE.read_text())
    except (OSError, ValueError):
        return None
    wanted = ("org_id", "assistant_id", "api_key")
    if not isinstance(demo, dict) or not all(isinstance(demo.get(k), str) for k in wanted):
        return None
    return demo


def example(settings: Settings) -> dict[str, Any]:
    """The opening document, variables and headers, and the tabs (the opening one, a publish
    and a rollback); secrets only in demo mode."""
    demo = read_demo() if settings.demo else None
    variables = {
        "orgId": demo["org_id"] if demo else "c",
        "assistantId": demo["assistant_id"] if demo else PLACEHOLDER_ASSISTANT,
        "input": EXAMPLE_INPUT,
    }
    headers = {"authorization": f"Bearer {demo['api_key'] if demo else PLACEHOLDER_KEY}"}
    query = (DEMO_NOTE if demo else "") + EXAMPLE_QUERY
    ids = {"orgId": variables["orgId"], "assistantId": variables["assistantId"]}
    headers_text = json.dumps(headers, indent=2)
    tabs = [
        (query, variables),
        (PUBLISH_QUERY, ids),
        (ROLLBACK_QUERY, {**ids, "release": 1}),
    ]
    return {
        "query": query,
        "variables": json.dumps(variables, indent=2),
        "headers": headers_text,
        "tabs": [
            {"query": text, "variables": json.dumps(values, indent=2), "headers": headers_text}
            for text, values in tabs
        ],
    }


def render_page(settings: Settings, endpoint: str, *, local: bool) -> str:
    scripts, styles = asset_urls(local=local)
    config = {"url": endpoint, **example(settings)}
    # `<` escaped so no value can close the script element that carries the JSON.
    config_json = json.dumps(config).replace("<", "\\u003c")
    return PAGE.format(
        styles="\n".join(f'<link rel="stylesheet" href="{html.escape(u)}">' for u in styles),
        scripts="\n".join(f'<script src="{html.escape(u)}"></script>' for u in scripts),
        config=config_json,
        bootstrap=BOOTSTRAP,
        source="local" if local else "cdn",
    )


def content_security_policy(*, local: bool) -> str:
    """Scripts, styles and fonts only from here (or the CDN when falling back); requests only to
    this server, so the browser itself enforces that the page never calls anything else."""
    sources = "'self'" if local else f"'self' {CDN.rsplit('/', 1)[0]}"
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {sources} 'sha256-{BOOTSTRAP_HASH}'",
            f"style-src {sources} 'unsafe-inline'",
            f"font-src {sources} data:",
            f"img-src {sources} data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def page_response(settings: Settings, endpoint: str) -> Response:
    """The page, never cached (in demo mode it carries a key), under its CSP."""
    local = local_assets_available()
    headers = {
        "Cache-Control": "no-store",
        "Content-Security-Policy": content_security_policy(local=local),
    }
    return HTMLResponse(render_page(settings, endpoint, local=local), headers=headers)


BOOTSTRAP = """\
  const config = JSON.parse(document.getElementById("graphiql-config").textContent);
  const root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(React.createElement(GraphiQL, {
    fetcher: GraphiQL.createFetcher({
      url: config.url,
      // graphql-transport-ws; the headers become the connection_init payload
      subscriptionUrl: location.origin.replace(/^http/, "ws") + config.url,
    }),
    query: config.query,
    variables: config.variables,
    headers: config.headers,
    defaultTabs: config.tabs,
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: false,
    defaultEditorToolsVisibility: "headers",
  }));
"""
BOOTSTRAP_HASH = base64.b64encode(hashlib.sha256(BOOTSTRAP.encode()).digest()).decode()

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="graphiql-assets" content="{source}">
<title>GraphiQL · assistants API</title>
<link rel="icon" href="data:,">
<style>html, body, #graphiql {{ height: 100%; margin: 0; }}</style>
{styles}
</head>
<body>
<div id="graphiql">Loading GraphiQL…</div>
<script id="graphiql-config" type="application/json">{config}</script>
{scripts}
<script>{bootstrap}</script>
</body>
</html>
"""
