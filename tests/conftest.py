"""Fixtures on a real PostgreSQL.

The server is TEST_DATABASE_URL's when set (any PostgreSQL 15+ where the user may create databases
and roles), else an embedded one started once for the run. Each run creates its own database,
migrates it once, and drops it at the end; tests isolate themselves by using fresh users (every row
belongs to a user), so they need no per-test database.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from chatsessions.app import create_app
from chatsessions.auth import TokenAuthority
from chatsessions.config import Settings
from chatsessions.db.migrate import migrate_url

TEST_JWT_SECRET = "test-secret-" + secrets.token_hex(16)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """URL of a PostgreSQL server's maintenance database (we create our own databases there)."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    from chatsessions.db.embedded import start_embedded, stop_embedded

    with tempfile.TemporaryDirectory(prefix="chatsessions-test-") as tmp:
        try:
            yield start_embedded(Path(tmp))
        finally:
            stop_embedded(Path(tmp))


async def create_database(server_url: str, *, migrated: bool = True) -> str:
    """A new empty (or migrated) database on the test server; returns its URL."""
    name = f"chatsessions_test_{os.getpid()}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'create database "{name}"')
    finally:
        await admin.close()
    url = _with_database(server_url, name)
    if migrated:
        await migrate_url(url)
    return url


async def drop_database(server_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'drop database if exists "{name}" with (force)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
async def database_url(server_url: str) -> AsyncIterator[str]:
    """A migrated database for this test run."""
    url = await create_database(server_url)
    yield url
    await drop_database(server_url, url)


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the login (owner) role; use `as_user` to act as a user."""
    c = await asyncpg.connect(database_url, server_settings={"timezone": "UTC"})
    await c.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    yield c
    await c.close()


async def act_as(
    c: asyncpg.Connection, user_id: uuid.UUID | str | None, role: str = "authenticated"
) -> None:
    """Inside an open transaction: become `role` with `user_id` as auth.uid() (None: no user)."""
    claims = {"sub": str(user_id), "role": role, "aud": "authenticated"} if user_id else {}
    await c.execute(
        "select set_config('role', $1, true), set_config('request.jwt.claims', $2, true)",
        role,
        json.dumps(claims),
    )


@asynccontextmanager
async def as_user(
    c: asyncpg.Connection, user_id: uuid.UUID | str | None, role: str = "authenticated"
) -> AsyncIterator[asyncpg.Connection]:
    """A transaction in which `c` acts as `user_id` under `role` (committed on success)."""
    async with c.transaction():
        await act_as(c, user_id, role)
        yield c


@pytest.fixture
def new_user_id() -> Callable[[], uuid.UUID]:
    return uuid.uuid4


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
        data_dir=tmp_path_factory.mktemp("data"),
        dev_sign_in=True,
        max_body_bytes=64 * 1024,
    )


@pytest.fixture(scope="session")
def authority(settings: Settings) -> TokenAuthority:
    return TokenAuthority(settings)


@pytest.fixture(scope="session")
async def app(settings: Settings, database_url: str) -> AsyncIterator[object]:
    application = create_app(settings, database_url=database_url)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    """An unauthenticated client over the ASGI app."""
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@dataclass
class ApiUser:
    id: uuid.UUID
    token: str
    client: httpx.AsyncClient

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
async def make_user(
    app: object, authority: TokenAuthority
) -> AsyncIterator[Callable[[], Awaitable[ApiUser]]]:
    """Creates fresh users, each with a valid token and an authenticated client."""
    clients: list[httpx.AsyncClient] = []

    async def factory() -> ApiUser:
        user_id = uuid.uuid4()
        token = authority.issue(user_id)
        c = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
            base_url="http://test",
            headers={"Authorization": f"Bearer {token}"},
        )
        clients.append(c)
        return ApiUser(user_id, token, c)

    yield factory
    for c in clients:
        await c.aclose()
