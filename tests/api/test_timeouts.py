"""A lock held outside the service costs the waiting request a 503, not a parked connection."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx

from chatsessions.app import create_app
from chatsessions.config import Settings
from conftest import TEST_JWT_SECRET, as_user


async def test_a_held_profile_lock_gives_503_database_busy(
    database_url: str, conn, tmp_path: Path
) -> None:
    settings = Settings(  # type: ignore[arg-type]
        jwt_secret=TEST_JWT_SECRET, data_dir=tmp_path, migrate_on_start=False, lock_timeout_ms=300
    )
    app = create_app(settings, database_url=database_url)
    user = uuid.uuid4()
    headers = {"Authorization": f"Bearer {app.state.authority.issue(user)}"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=headers
        ) as client:
            assert (await client.post("/api/chat/sessions", json={"id": "a"})).status_code == 201
            # Someone (a psql session, a direct SQL caller) holds this user's profile lock.
            async with as_user(conn, user):
                await conn.execute("select chatsessions.lock_current_user()")
                r = await asyncio.wait_for(
                    client.post("/api/chat/session", json={"id": "a", "is_active": True}), 10
                )
            assert r.status_code == 503
            assert r.json()["code"] == "database_busy"
            # Once the lock is gone, the same request goes through.
            r = await client.post("/api/chat/session", json={"id": "a", "is_active": True})
            assert r.status_code == 200
            assert r.json()["session"]["is_active"] is True
