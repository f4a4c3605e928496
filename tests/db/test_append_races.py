"""Concurrent appends that share message ids, in opposite orders, into different sessions."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from conftest import as_user
from db.helpers import connect, create


async def _append(url: str, user: uuid.UUID, session_id: str, ids: list[str]) -> str:
    """Appends `ids` to `session_id` as `user`; returns 'ok' or the SQLSTATE it failed with."""
    conn = await connect(url, {"deadlock_timeout": "100ms"})
    try:
        batch = [{"id": i, "role": "user", "content": f"to {session_id}"} for i in ids]
        async with as_user(conn, user):
            await conn.fetchval("select chatsessions.append_messages($1, $2)", session_id, batch)
        return "ok"
    except asyncpg.PostgresError as exc:
        return exc.sqlstate or "?"
    finally:
        await conn.close()


async def test_shared_ids_in_opposite_orders_conflict_instead_of_deadlocking(
    database_url: str, conn: asyncpg.Connection
) -> None:
    outcomes: list[str] = []
    for round_ in range(10):
        user = uuid.uuid4()
        await create(conn, user, "s1")
        await create(conn, user, "s2")
        ids = [f"r{round_}-m{i}" for i in range(200)]
        outcomes += await asyncio.gather(
            _append(database_url, user, "s1", ids),
            _append(database_url, user, "s2", list(reversed(ids))),
        )
        # Whatever won, no message was lost or doubled: the winner has all 200, the loser none.
        counts = await conn.fetch(
            "select id, message_count from chatsessions.chat_sessions where user_id = $1", user
        )
        assert sorted(r["message_count"] for r in counts) == [0, 200]
    assert "40P01" not in outcomes, outcomes
    assert sorted(set(outcomes)) == ["CS409", "ok"], outcomes
    assert outcomes.count("ok") == 10
