"""Where a request comes from, for the audit log (docs/audit-log.md): one `Origin` per request
of either transport, from what the middleware already knows (request id, client address)."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from app.domain.access import Origin
from app.http.middleware import client_address, request_state

USER_AGENT_CHARS = 200


def origin_of(connection: HTTPConnection, transport: str) -> Origin:
    """The request's transport (`rest`, `graphql`, `websocket`), id, client address and
    User-Agent (its first 200 characters)."""
    agent = connection.headers.get("user-agent")
    return Origin(
        transport=transport,
        request_id=request_state(connection.scope).get("request_id"),
        client_ip=client_address(connection.scope),
        user_agent=None if agent is None else agent[:USER_AGENT_CHARS],
    )
