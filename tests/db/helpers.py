"""Small helpers shared by the SQL-level tests: calling the functions as a user, capturing the
SQLSTATE of a refused statement, and reading rows back as the owner."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest

from conftest import as_user

User = uuid.UUID | str | None


async def connect(url: str, settings: dict[str, str] | None = None) -> asyncpg.Connection:
    """A connection as the owner (login) role, set up like the `conn` fixture's."""
    c = await asyncpg.connect(url, server_settings={"timezone": "UTC", **(settings or {})})
    await c.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    return c


async def val(
    conn: asyncpg.Connection, user: User, sql: str, *args: Any, role: str = "authenticated"
) -> Any:
    """fetchval of `sql` in a transaction of its own as `user` (committed)."""
    async with as_user(conn, user, role):
        return await conn.fetchval(sql, *args)


async def rows(
    conn: asyncpg.Connection, user: User, sql: str, *args: Any, role: str = "authenticated"
) -> list[asyncpg.Record]:
    async with as_user(conn, user, role):
        return await conn.fetch(sql, *args)


async def status(
    conn: asyncpg.Connection, user: User, sql: str, *args: Any, role: str = "authenticated"
) -> str:
    """The command status (e.g. 'UPDATE 0') of `sql` run as `user`."""
    async with as_user(conn, user, role):
        return await conn.execute(sql, *args)


async def refused(
    conn: asyncpg.Connection, user: User, sql: str, *args: Any, role: str = "authenticated"
) -> asyncpg.PostgresError:
    """Runs `sql` as `user`, which must fail; returns the error (its transaction is rolled back)."""
    with pytest.raises(asyncpg.PostgresError) as info:
        async with as_user(conn, user, role):
            await conn.fetch(sql, *args)
    return info.value


async def sqlstate(
    conn: asyncpg.Connection, user: User, sql: str, *args: Any, role: str = "authenticated"
) -> str:
    return (await refused(conn, user, sql, *args, role=role)).sqlstate


async def create(
    conn: asyncpg.Connection,
    user: User,
    session_id: str | None = None,
    title: str | None = None,
    is_active: bool = False,
    scope: str = "account",
) -> dict[str, Any]:
    result: dict[str, Any] = await val(
        conn,
        user,
        "select chatsessions.create_session($1, $2, $3, $4)",
        session_id,
        title,
        is_active,
        scope,
    )
    return result


async def activate(
    conn: asyncpg.Connection, user: User, session_id: str, scope: str = "account"
) -> dict[str, Any]:
    result: dict[str, Any] = await val(
        conn, user, "select chatsessions.activate_session($1, $2)", session_id, scope
    )
    return result


async def append(
    conn: asyncpg.Connection,
    user: User,
    session_id: str,
    messages: list[dict[str, Any]],
    scope: str = "account",
) -> dict[str, Any]:
    result: dict[str, Any] = await val(
        conn, user, "select chatsessions.append_messages($1, $2, $3)", session_id, messages, scope
    )
    return result


async def active_pointers(conn: asyncpg.Connection, user: User) -> dict[str, str]:
    """{scope: session_id} of `user`'s active pointers, read as the owner."""
    records = await conn.fetch(
        "select scope::text, session_id::text from chatsessions.active_sessions where user_id = $1",
        user,
    )
    return {r["scope"]: r["session_id"] for r in records}


async def session_rows(conn: asyncpg.Connection, user: User) -> dict[str, asyncpg.Record]:
    """Every session row of `user`, read as the owner, by id."""
    records = await conn.fetch(
        "select * from chatsessions.chat_sessions where user_id = $1 order by id", user
    )
    return {r["id"]: r for r in records}


async def session_json(
    conn: asyncpg.Connection, user: User, session_id: str, scope: str = "account"
) -> dict[str, Any] | None:
    """The session as the service reads it (queries.sql get_session), as `user`."""
    result: dict[str, Any] | None = await val(
        conn,
        user,
        "select chatsessions.session_json(s, $2) from chatsessions.chat_sessions s"
        " where s.user_id = auth.uid() and s.id = $1",
        session_id,
        scope,
    )
    return result
