"""`python bench/audit_off.py serve …`: the server with the audit log's `record_audit` made a
no-op, for bench/audit.py's comparison only (the application itself has no such switch)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import app.domain.audit as audit
from app.__main__ import main


async def _nothing(*_args: Any, **_kwargs: Any) -> int:
    return 0


# every use case holds the function itself (imported by name): its code is what changes
audit.record_audit.__code__ = _nothing.__code__

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
