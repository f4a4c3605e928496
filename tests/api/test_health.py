"""Liveness, readiness and the API description."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from chatsessions.app import create_app
from chatsessions.config import Settings
from chatsessions.db.migrate import latest_version

ROUTES = {
    "/api/chat/session": {"get", "post"},
    "/api/chat/sessions": {"get", "post", "delete"},
    "/api/chat/messages": {"get", "post"},
    "/api/auth/config": {"get"},
    "/api/dev/token": {"post"},
    "/healthz": {"get"},
    "/readyz": {"get"},
}


async def test_healthz(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_readyz(client: httpx.AsyncClient) -> None:
    r = await client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "schema_version": latest_version()}


async def test_openapi_lists_the_routes(client: httpx.AsyncClient) -> None:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert spec["info"]["title"] == "chatsessions"
    for path, methods in ROUTES.items():
        assert path in spec["paths"], path
        assert methods <= set(spec["paths"][path]), (path, set(spec["paths"][path]))


async def test_docs(client: httpx.AsyncClient) -> None:
    r = await client.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in r.text


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


@pytest.fixture
async def empty_database(server_url: str) -> AsyncIterator[str]:
    name = f"chatsessions_test_empty_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'create database "{name}"')
    finally:
        await admin.close()
    yield _with_database(server_url, name)
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'drop database if exists "{name}" with (force)')
    finally:
        await admin.close()


async def readyz_of(url: str, tmp_path) -> httpx.Response:
    settings = Settings(
        jwt_secret="s" * 32,  # type: ignore[arg-type]
        data_dir=tmp_path,
        database_url=url,
        migrate_on_start=False,
    )
    app = create_app(settings, database_url=url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            r = await c.get("/readyz")
            assert (await c.get("/healthz")).status_code == 200  # alive all the same
            return r


async def test_readyz_on_an_unmigrated_database(empty_database: str, tmp_path) -> None:
    r = await readyz_of(empty_database, tmp_path)
    assert r.status_code == 503, r.text
    assert set(r.json()) == {"error", "code"}
    assert r.json()["code"] in ("not_migrated", "database_unavailable")


async def test_readyz_on_a_partly_migrated_database(empty_database: str, tmp_path) -> None:
    conn = await asyncpg.connect(empty_database)
    try:
        await conn.execute(
            "create schema chatsessions;"
            " create table chatsessions.schema_migrations (version text primary key,"
            " name text not null, checksum text not null,"
            " applied_at timestamptz not null default now());"
            " insert into chatsessions.schema_migrations (version, name, checksum)"
            " values ('0001', 'roles_and_auth', 'x')"
        )
    finally:
        await conn.close()
    r = await readyz_of(empty_database, tmp_path)
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "not_migrated"
    assert latest_version() in r.json()["error"]
