"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from chatsessions.api.deps import Db
from chatsessions.db.migrate import latest_version
from chatsessions.errors import DatabaseUnavailable

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(db: Db) -> Any:
    """The database answers and has every migration this version of the service needs."""
    version = await db.readiness()
    if version is None or version < latest_version():
        raise DatabaseUnavailable(
            f"database schema at {version}, needs {latest_version()}: run `chatsessions migrate`",
            code="not_migrated",
        )
    return {"status": "ready", "schema_version": version}
