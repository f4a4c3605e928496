"""chatsessions.act_as_caller: how one statement both identifies the caller and acts.

The service's writes are single statements of the form
`select chatsessions.f(...) where chatsessions.act_as_caller($claims)`; these tests pin down what
that relies on, and that nothing of it outlives the statement on a pooled connection.
"""

from __future__ import annotations

import json
import uuid

import asyncpg
import pytest

from chatsessions.db.queries import QUERIES
from conftest import as_user

GATED = "select {expr} where chatsessions.act_as_caller($1)"


def claims(user: uuid.UUID) -> str:
    return json.dumps({"sub": str(user), "role": "authenticated", "aud": "authenticated"})


async def test_the_statement_runs_as_the_caller(conn: asyncpg.Connection) -> None:
    user = uuid.uuid4()
    row = await conn.fetchrow(GATED.format(expr="current_user::text, auth.uid()"), claims(user))
    assert tuple(row) == ("authenticated", user)


async def test_nothing_outlives_the_statement(conn: asyncpg.Connection) -> None:
    login = await conn.fetchval("select current_user::text")
    user = uuid.uuid4()
    await conn.fetchval(QUERIES["create_session"], claims(user), "a", None, True, "account")
    assert await conn.fetchval("select current_user::text") == login
    assert await conn.fetchval("select current_setting('request.jwt.claims', true)") in (None, "")
    # ... and the write was committed by the statement itself.
    assert (
        await conn.fetchval(
            "select session_id from chatsessions.active_sessions where user_id = $1", user
        )
        == "a"
    )


async def test_nothing_outlives_a_failing_statement(conn: asyncpg.Connection) -> None:
    login = await conn.fetchval("select current_user::text")
    with pytest.raises(asyncpg.PostgresError) as info:
        await conn.fetchval(
            QUERIES["update_session"], claims(uuid.uuid4()), "missing", None, True, "account"
        )
    assert info.value.sqlstate == "CS404"
    assert await conn.fetchval("select current_user::text") == login
    assert await conn.fetchval("select current_setting('request.jwt.claims', true)") in (None, "")


async def test_a_switch_through_the_gate_sees_only_the_callers_rows(
    conn: asyncpg.Connection,
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    await conn.fetchval(QUERIES["create_session"], claims(alice), "a", None, False, "account")
    # Bob names Alice's session: row-level security and auth.uid() apply inside the statement.
    with pytest.raises(asyncpg.PostgresError) as info:
        await conn.fetchval(QUERIES["update_session"], claims(bob), "a", None, True, "account")
    assert info.value.sqlstate == "CS404"
    result = await conn.fetchval(
        QUERIES["update_session"], claims(alice), "a", None, True, "account"
    )
    assert result["is_active"] is True


@pytest.mark.parametrize("role", ["authenticated", "anon"])
async def test_only_the_login_role_may_use_it(conn: asyncpg.Connection, role: str) -> None:
    # A client with SQL access must not get a way to change role or claims through it.
    with pytest.raises(asyncpg.PostgresError) as info:
        async with as_user(conn, uuid.uuid4(), role):
            await conn.fetchval("select chatsessions.act_as_caller('{}')")
    assert info.value.sqlstate == "42501"
    assert not await conn.fetchval(
        "select has_function_privilege($1, 'chatsessions.act_as_caller(text)', 'execute')", role
    )
