"""The organisation (and key) a test acts as, made by the fixtures of `tests/conftest.py`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Org:
    """An organisation and one of its keys: `headers` authenticate as that key."""

    org_id: str
    key_id: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}
