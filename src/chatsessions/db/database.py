"""The data-access module: owns the connection pool and exposes one typed async function per
named query. Every query runs as the role `authenticated` with the caller's verified claims, so
row-level security and auth.uid() govern it exactly as they govern a direct SQL caller. Writes are
one statement each (one round trip, its own transaction); reads run in a short transaction that
first sets the caller. Routes never import the driver.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg

from chatsessions import errors
from chatsessions.auth import User
from chatsessions.db.errors import translate
from chatsessions.db.migrate import latest_version
from chatsessions.db.queries import QUERIES

Json = dict[str, Any]

ACQUIRE_TIMEOUT = 10.0
"""Seconds a request waits for a free pool connection before it gets 503 database_busy."""


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class UserConnection:
    """The queries one request may run, on one pooled connection, as its user."""

    def __init__(self, conn: asyncpg.Connection, claims: str) -> None:
        self._conn = conn
        self._claims = claims

    async def _write(self, name: str, *args: Any) -> Any:
        # The statement itself takes on the caller (chatsessions.act_as_caller): one round trip.
        return await self._conn.fetchval(QUERIES[name], self._claims, *args)

    async def _read(self, name: str, *args: Any) -> asyncpg.Record | None:
        async with self._conn.transaction():
            await self._conn.fetchval(QUERIES["set_request_user"], self._claims)
            row: asyncpg.Record | None = await self._conn.fetchrow(QUERIES[name], *args)
            return row

    async def get_session(self, session_id: str, scope: str) -> Json | None:
        row = await self._read("get_session", session_id, scope)
        return None if row is None else row[0]

    async def list_sessions(
        self, scope: str, after: tuple[datetime, str] | None, limit: int
    ) -> tuple[list[Json], str | None, tuple[datetime, str] | None]:
        """A page of sessions, the active session id, and the cursor of the next page (or None)."""
        cursor_at, cursor_id = after if after else (None, None)
        row = await self._read("list_sessions", scope, cursor_at, cursor_id, limit + 1)
        assert row is not None
        sessions: list[Json] = row["sessions"][:limit]
        ordered_at = [s.pop("ordered_at") for s in sessions]
        next_after = None
        if len(row["sessions"]) > limit:
            next_after = (datetime.fromisoformat(ordered_at[-1]), sessions[-1]["id"])
        return sessions, row["active_session_id"], next_after

    async def update_session(
        self, session_id: str, title: str | None, is_active: bool | None, scope: str
    ) -> Json:
        result: Json = await self._write("update_session", session_id, title, is_active, scope)
        return result

    async def create_session(
        self, session_id: str | None, title: str | None, is_active: bool, scope: str
    ) -> Json:
        result: Json = await self._write("create_session", session_id, title, is_active, scope)
        return result

    async def delete_session(self, session_id: str) -> None:
        await self._write("delete_session", session_id)

    async def append_messages(self, session_id: str, messages: list[Json], scope: str) -> Json:
        result: Json = await self._write("append_messages", session_id, messages, scope)
        return result

    async def list_messages(self, session_id: str, after: int, limit: int) -> list[Json] | None:
        """Messages after seq `after`; None when the session does not exist (for this user)."""
        row = await self._read("list_messages", session_id, after, limit)
        return None if row is None else list(row["messages"])


class Database:
    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        lock_timeout_ms: int = 5000,
        statement_timeout_ms: int = 15000,
    ) -> None:
        self.dsn = dsn
        self._timeouts = {
            "lock_timeout": f"{lock_timeout_ms}ms",
            "statement_timeout": f"{statement_timeout_ms}ms",
        }
        self._min_size = min_size
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        # Users whose profile row this process has already made sure of (bounded).
        self._known_users: OrderedDict[Any, None] = OrderedDict()

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.dsn,
            min_size=self._min_size,
            max_size=self._max_size,
            init=_init_connection,
            server_settings={
                # UTC so that timestamps in JSON results read the same whatever the server's zone.
                "timezone": "UTC",
                "application_name": "chatsessions",
                # A lock held elsewhere (say, an open psql transaction on a user's profile) must
                # cost that user a 503 after a while, not park pool connections until every user
                # waits.
                **self._timeouts,
                "idle_in_transaction_session_timeout": "60s",
            },
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise errors.DatabaseUnavailable("database pool is not open")
        return self._pool

    @asynccontextmanager
    async def as_user(self, user: User) -> AsyncIterator[UserConnection]:
        """A connection acting as `user`; database errors come out as the project's errors."""
        claims = json.dumps(user.claims)
        # The profile row is created on a user's first request (every write path would create it
        # anyway; this makes it exist for readers too), once per process and user.
        new_user = user.id not in self._known_users
        try:
            async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
                if new_user:
                    await conn.fetchval(QUERIES["ensure_profile"], claims)
                yield UserConnection(conn, claims)
            if new_user:
                self._remember(user.id)
        except asyncpg.PostgresError as exc:
            raise translate(exc) from exc
        except TimeoutError as exc:
            raise errors.DatabaseUnavailable(
                "all database connections are busy, try again", code="database_busy"
            ) from exc
        except (OSError, asyncpg.InterfaceError) as exc:
            raise errors.DatabaseUnavailable(f"database unavailable: {exc}") from exc

    def _remember(self, user_id: Any) -> None:
        self._known_users[user_id] = None
        if len(self._known_users) > 100_000:
            self._known_users.popitem(last=False)

    async def readiness(self) -> str | None:
        """The newest applied migration, after checking that requests can run as `authenticated`
        (a login role without that right would pass every other check and fail every request)."""
        try:
            async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
                version: str | None = await conn.fetchval(QUERIES["schema_version"])
                if version is None or version < latest_version():
                    return version  # not migrated yet: the switch below needs the schema
                tx = conn.transaction()
                await tx.start()
                try:
                    await conn.fetchval(QUERIES["set_request_user"], "{}")
                finally:
                    await tx.rollback()
                return version
        except asyncpg.UndefinedTableError:
            return None  # not migrated at all
        except asyncpg.PostgresError as exc:
            raise translate(exc) from exc
        except (TimeoutError, OSError, asyncpg.InterfaceError) as exc:
            raise errors.DatabaseUnavailable(f"database not ready: {exc}") from exc
