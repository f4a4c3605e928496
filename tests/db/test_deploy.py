"""Installing as a hosted provider's login role would: not a superuser, only CREATEROLE and
CREATEDB, on a server where the roles `authenticated` and `anon` do not exist yet.

Runs on a server of its own (embedded PostgreSQL, the newest major version, where PostgreSQL 16's
split of role membership into ADMIN / SET options applies), since roles are server-wide.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from chatsessions.app import create_app
from chatsessions.config import Settings
from chatsessions.db.embedded import start_embedded, stop_embedded
from chatsessions.db.migrate import migrate_url


@pytest.fixture(scope="module")
def fresh_server() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="chatsessions-deploy-") as tmp:
        try:
            yield start_embedded(Path(tmp))
        finally:
            stop_embedded(Path(tmp))


def _as(url: str, user: str, database: str) -> str:
    parts = urlsplit(url)
    netloc = f"{user}@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc, path="/" + database))


async def test_a_non_superuser_installs_and_serves(fresh_server: str, tmp_path: Path) -> None:
    admin = await asyncpg.connect(fresh_server)
    try:
        roles = "select count(*) from pg_roles where rolname = 'authenticated'"
        assert await admin.fetchval(roles) == 0
        await admin.execute("create role service login createrole createdb")
        await admin.execute("create database app owner service")
    finally:
        await admin.close()
    url = _as(fresh_server, "service", "app")

    assert await migrate_url(url) == ["0001", "0002", "0003", "0004", "0005"]

    settings = Settings(jwt_secret="deploy-test-" + "x" * 32, data_dir=tmp_path)  # type: ignore[arg-type]
    app = create_app(settings, database_url=url)
    user = uuid.uuid4()
    token = app.state.authority.issue(user)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://test",
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            assert (await client.get("/readyz")).status_code == 200
            r = await client.post("/api/chat/sessions", json={"id": "a", "is_active": True})
            assert r.status_code == 201, r.text
            r = await client.get("/api/chat/sessions")
            assert r.json()["active_session_id"] == "a"

    # The service's queries really ran as `authenticated`, subject to row-level security.
    conn = await asyncpg.connect(url)
    try:
        superuser = "select rolsuper from pg_roles where rolname = current_user"
        assert await conn.fetchval(superuser) is False
        assert await conn.fetchval("select count(*) from chatsessions.chat_sessions") == 1
    finally:
        await conn.close()


async def test_readiness_fails_when_the_login_role_cannot_become_authenticated(
    fresh_server: str, tmp_path: Path
) -> None:
    admin = await asyncpg.connect(fresh_server)
    try:
        await admin.execute("create role outsider login")
        await admin.execute("grant connect on database app to outsider")
    finally:
        await admin.close()
    settings = Settings(  # type: ignore[arg-type]
        jwt_secret="deploy-test-" + "x" * 32, data_dir=tmp_path, migrate_on_start=False
    )
    app = create_app(settings, database_url=_as(fresh_server, "outsider", "app"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            r = await client.get("/readyz")
            assert r.status_code == 503
            assert r.json()["code"] == "database_misconfigured"
