"""Owner-only access, proved both ways (allowed for the owner, refused for everyone else), by
calling every function and touching every table directly in SQL, as a Supabase client could.

User A owns some sessions; user B tries everything on them. Then the anonymous role, a request
without a user, a role that only has PUBLIC's rights, and the catalogs."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from chatsessions.db.queries import QUERIES
from conftest import as_user

from .helpers import (
    activate,
    active_pointers,
    append,
    connect,
    create,
    refused,
    rows,
    session_rows,
    sqlstate,
    status,
    val,
)

TABLES = ["profiles", "chat_sessions", "chat_messages", "active_sessions"]
TRIGGER_FUNCTIONS = [
    "update_session_timestamp",
    "assign_message_seq",
    "update_session_stats_on_insert",
    "update_session_stats_on_delete",
    "forbid_message_update",
]


@dataclass
class Owner:
    a: uuid.UUID
    b: uuid.UUID


async def everything_of(conn: asyncpg.Connection, user: uuid.UUID) -> dict[str, list[Any]]:
    """Every row of `user` in every table, read as the owner."""
    return {
        "profiles": await conn.fetch("select * from chatsessions.profiles where id = $1", user),
        "chat_sessions": await conn.fetch(
            "select * from chatsessions.chat_sessions where user_id = $1 order by id", user
        ),
        "chat_messages": await conn.fetch(
            "select * from chatsessions.chat_messages where user_id = $1 order by id", user
        ),
        "active_sessions": await conn.fetch(
            "select * from chatsessions.active_sessions where user_id = $1 order by scope", user
        ),
    }


@pytest.fixture
async def users(conn: asyncpg.Connection) -> Owner:
    """A with sessions a1 (active, with messages) and a2; B with b1 (active in 'phone')."""
    a, b = uuid.uuid4(), uuid.uuid4()
    await create(conn, a, "a1", title="A's secret", is_active=True)
    await create(conn, a, "a2")
    await append(conn, a, "a1", [{"id": "am1", "role": "user", "content": "A's words"}])
    await create(conn, b, "b1", is_active=True, scope="phone")
    return Owner(a, b)


# -- user B on user A's data ----------------------------------------------------------------------


async def test_functions_refuse_another_users_session(
    conn: asyncpg.Connection, users: Owner
) -> None:
    a, b = users.a, users.b
    before = await everything_of(conn, a)
    msgs = [{"role": "user", "content": "B's words"}]
    calls: list[tuple[str, tuple[Any, ...], str]] = [
        ("select chatsessions.activate_session($1)", ("a1",), "CS404"),
        ("select chatsessions.activate_session($1, 'phone')", ("a1",), "CS404"),
        ("select chatsessions.deactivate_session($1)", ("a1",), "CS404"),
        ("select chatsessions.update_session($1, 'hacked')", ("a1",), "CS404"),
        ("select chatsessions.update_session($1, 'hacked', true)", ("a1",), "CS404"),
        ("select chatsessions.update_session($1, null, false)", ("a1",), "CS404"),
        ("select chatsessions.delete_session($1)", ("a1",), "CS404"),
        ("select chatsessions.append_messages($1, $2)", ("a1", msgs), "CS404"),
        ("select chatsessions.set_active_session($1, 'a1')", (a,), "42501"),
        ("select chatsessions.set_active_session($1, 'b1')", (a,), "42501"),
        ("select chatsessions.set_active_session(null, 'b1')", (), "42501"),
    ]
    for sql, args, expected in calls:
        error = await refused(conn, b, sql, *args)
        assert error.sqlstate == expected, (sql, error)
        if expected == "CS404":
            # Indistinguishable from a session that does not exist at all.
            missing = await refused(conn, b, sql, "no-such-session", *args[1:])
            assert (missing.sqlstate, str(missing)) == (error.sqlstate, str(error)), sql
    # The plan's signature with B's own id and A's session id: "not found".
    assert await val(conn, b, "select chatsessions.set_active_session($1, 'a1')", b) is False
    # Reads: nothing.
    assert await val(conn, b, QUERIES["get_session"], "a1", "account") is None
    assert await val(conn, b, QUERIES["list_messages"], "a1", 0, 100) is None
    assert await everything_of(conn, a) == before

    # The same calls are allowed to A.
    assert (await val(conn, a, "select chatsessions.activate_session('a2')"))["is_active"] is True
    assert (await val(conn, a, "select chatsessions.deactivate_session('a2')"))["id"] == "a2"
    result = await val(conn, a, "select chatsessions.update_session('a1', 'renamed', true)")
    assert result["title"] == "renamed" and result["is_active"] is True
    result = await val(conn, a, "select chatsessions.append_messages('a1', $1)", msgs)
    assert result["session"]["message_count"] == 2
    assert await val(conn, a, "select chatsessions.set_active_session($1, 'a2')", a) is True
    assert (await val(conn, a, QUERIES["get_session"], "a1", "account"))["id"] == "a1"
    assert len(await val(conn, a, QUERIES["list_messages"], "a1", 0, 100)) == 2
    await val(conn, a, "select chatsessions.delete_session('a2')")
    assert set(await session_rows(conn, a)) == {"a1"}
    assert await active_pointers(conn, a) == {}


async def test_another_users_rows_are_invisible(conn: asyncpg.Connection, users: Owner) -> None:
    a, b = users.a, users.b
    for table in TABLES:
        key = "id" if table == "profiles" else "user_id"
        # Asked for by A's id: no rows, and no error.
        assert (
            await val(conn, b, f"select count(*) from chatsessions.{table} where {key} = $1", a)
            == 0
        )
        # Unfiltered: only B's own.
        owners = await rows(conn, b, f"select distinct {key} as owner from chatsessions.{table}")
        assert [r["owner"] for r in owners] in ([b], []), table
    assert await val(conn, b, "select count(*) from chatsessions.chat_sessions") == 1
    assert await val(conn, b, "select count(*) from chatsessions.active_sessions") == 1
    # A forged row of A's active session tells B nothing about A's pointers.
    forged = await val(
        conn,
        b,
        "select chatsessions.session_json(row($1::uuid, 'a1', 't', now(), now(), now(), 0, 0,"
        " null, null, null, null)::chatsessions.chat_sessions, 'account')",
        a,
    )
    assert forged["is_active"] is False
    # While A sees all of them.
    assert await val(conn, a, "select count(*) from chatsessions.chat_sessions") == 2
    assert await val(conn, a, "select count(*) from chatsessions.chat_messages") == 1


async def test_rows_cannot_be_inserted_for_another_user(
    conn: asyncpg.Connection, users: Owner
) -> None:
    a, b = users.a, users.b
    before = await everything_of(conn, a)
    stranger = uuid.uuid4()
    cases = [
        ("insert into chatsessions.profiles (id) values ($1)", a),
        ("insert into chatsessions.profiles (id) values ($1)", stranger),
        ("insert into chatsessions.chat_sessions (user_id, id, title) values ($1, 'x', 't')", a),
        ("insert into chatsessions.chat_sessions (user_id, id, title) values ($1, 'a1', 't')", a),
        (
            "insert into chatsessions.active_sessions (user_id, scope, session_id)"
            " values ($1, 'account', 'a2')",
            a,
        ),
        (
            "insert into chatsessions.active_sessions (user_id, scope, session_id)"
            " values ($1, 'tablet', 'a2')",
            a,
        ),
    ]
    for sql, target in cases:
        error = await refused(conn, b, sql, target)
        assert error.sqlstate == "42501", (sql, error)
        assert "row-level security" in str(error), (sql, error)
    # For messages, the numbering trigger (BEFORE, with B's rights) runs before the policy check
    # and cannot find A's session: refused as "session not found", which reveals nothing either.
    for session_id in ("a1", "b1", "nope"):
        state = await sqlstate(
            conn,
            b,
            "insert into chatsessions.chat_messages (user_id, session_id, id, role, content)"
            " values ($1, $2, 'forged', 'user', 'x')",
            a,
            session_id,
        )
        assert state == "CS404", session_id
    assert await everything_of(conn, a) == before
    assert (
        await conn.fetchval("select count(*) from chatsessions.profiles where id = $1", stranger)
        == 0
    )

    # Allowed: the same statements for oneself.
    assert (
        await status(
            conn, b, "insert into chatsessions.chat_sessions (id, title) values ('x', 't')"
        )
        == "INSERT 0 1"
    )
    assert (
        await status(
            conn,
            b,
            "insert into chatsessions.chat_messages (session_id, id, role, content)"
            " values ('x', 'own', 'user', 'x')",
        )
        == "INSERT 0 1"
    )
    assert (
        await status(
            conn,
            b,
            "insert into chatsessions.active_sessions (scope, session_id) values ('tablet', 'x')",
        )
        == "INSERT 0 1"
    )


async def test_another_users_rows_cannot_be_changed(conn: asyncpg.Connection, users: Owner) -> None:
    a, b = users.a, users.b
    before = await everything_of(conn, a)
    zero_rows = [
        ("update chatsessions.chat_sessions set title = 'x' where user_id = $1", "UPDATE 0"),
        (
            "update chatsessions.active_sessions set session_id = 'a2' where user_id = $1",
            "UPDATE 0",
        ),
        ("update chatsessions.profiles set id = id where id = $1", "UPDATE 0"),
        ("delete from chatsessions.chat_sessions where user_id = $1", "DELETE 0"),
        ("delete from chatsessions.active_sessions where user_id = $1", "DELETE 0"),
    ]
    for sql, expected in zero_rows:
        assert await status(conn, b, sql, a) == expected, sql
    # Not granted at all: messages are never updated or deleted by users, and no row can be
    # handed to another user.
    denied = [
        ("update chatsessions.chat_messages set content = 'x' where user_id = $1", a),
        ("delete from chatsessions.chat_messages where user_id = $1", a),
        ("update chatsessions.chat_sessions set user_id = $1", a),
        ("update chatsessions.active_sessions set user_id = $1", a),
        ("update chatsessions.profiles set id = $1", a),  # granted column, refused by the policy
    ]
    for sql, arg in denied:
        assert await sqlstate(conn, b, sql, arg) == "42501", sql
    assert await everything_of(conn, a) == before
    # B's own rows: allowed.
    assert (
        await status(conn, b, "update chatsessions.chat_sessions set title = 'mine'") == "UPDATE 1"
    )
    assert await status(conn, b, "delete from chatsessions.active_sessions") == "DELETE 1"


async def test_statistics_and_timestamps_are_not_writable_by_users(
    conn: asyncpg.Connection, users: Owner
) -> None:
    b = users.b
    before = await everything_of(conn, b)
    for column, value in [
        ("message_count", "1000"),
        ("total_tokens", "1000"),
        ("last_model", "'forged'"),
        ("last_message_preview", "'forged'"),
        ("last_message_timestamp", "now()"),
        ("created_at", "now()"),
        ("updated_at", "now()"),
        ("last_activity", "now()"),
    ]:
        update = f"update chatsessions.chat_sessions set {column} = {value} where id = 'b1'"
        assert await sqlstate(conn, b, update) == "42501", column
        insert = (
            f"insert into chatsessions.chat_sessions (id, title, {column})"
            f" values ('n', 't', {value})"
        )
        assert await sqlstate(conn, b, insert) == "42501", column
    for column in ("seq", "created_at"):
        insert = (
            f"insert into chatsessions.chat_messages (session_id, id, role, content, {column})"
            f" values ('b1', 'n', 'user', 'x', default)"
        )
        assert await sqlstate(conn, b, insert) == "42501", column
    assert await sqlstate(conn, b, "update chatsessions.active_sessions set scope = 'other'") == (
        "42501"
    )
    assert await everything_of(conn, b) == before


async def test_trigger_functions_cannot_be_called(conn: asyncpg.Connection, users: Owner) -> None:
    for name in TRIGGER_FUNCTIONS:
        # Through the simple protocol: a statement returning `trigger` cannot even be described.
        with pytest.raises(asyncpg.PostgresError) as info:
            async with as_user(conn, users.b):
                await conn.execute(f"select chatsessions.{name}()")
        assert info.value.sqlstate == "42501", (name, info.value)
        assert not await conn.fetchval(
            "select has_function_privilege('authenticated', $1::regprocedure, 'execute')",
            f"chatsessions.{name}()",
        )


# -- anon, no user, PUBLIC -------------------------------------------------------------------------


async def all_functions(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every function of the schema chatsessions, and auth.uid()."""
    return await conn.fetch(
        """
        select p.oid::regprocedure::text as signature,
               format('%I.%I', n.nspname, p.proname) as name,
               array(select format_type(t, null) from unnest(p.proargtypes) t) as argtypes
          from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         where n.nspname = 'chatsessions' or p.oid = 'auth.uid()'::regprocedure
         order by 1
        """
    )


async def test_anon_is_refused_every_function_and_table(
    conn: asyncpg.Connection, users: Owner
) -> None:
    functions = await all_functions(conn)
    assert len(functions) >= 18
    for f in functions:
        args = ", ".join(f"null::{t}" for t in f["argtypes"])
        # Even with a real user's claims: anon is refused before any code runs.
        for user in (users.a, None):
            error = await refused(conn, user, f"select {f['name']}({args})", role="anon")
            assert error.sqlstate == "42501", (f["signature"], error)
        assert not await conn.fetchval(
            "select has_function_privilege('anon', $1::regprocedure, 'execute')", f["signature"]
        ), f["signature"]

    for table in TABLES:
        key = "id" if table == "profiles" else "user_id"
        t = f"chatsessions.{table}"
        for sql in [
            f"select * from {t}",
            f"insert into {t} ({key}) values ('{users.a}')",
            f"update {t} set {key} = {key}",
            f"delete from {t}",
        ]:
            error = await refused(conn, users.a, sql, role="anon")
            assert error.sqlstate == "42501", (sql, error)
        assert not await conn.fetchval(
            "select has_table_privilege('anon', $1, "
            "'select, insert, update, delete, truncate, references, trigger')",
            t,
        )
    assert not await conn.fetchval("select has_schema_privilege('anon', 'chatsessions', 'usage')")
    assert len((await everything_of(conn, users.a))["chat_sessions"]) == 2


async def test_no_user_no_function(conn: asyncpg.Connection, users: Owner) -> None:
    """As `authenticated` but without claims (auth.uid() is NULL): every function that acts for a
    user refuses with 28000; tables answer with no rows."""
    calls = [
        "select chatsessions.current_user_id()",
        "select chatsessions.ensure_profile()",
        "select chatsessions.lock_current_user()",
        "select chatsessions.activate_session('a1')",
        "select chatsessions.deactivate_session('a1')",
        "select chatsessions.update_session('a1', 'x')",
        "select chatsessions.update_session('a1', null, true)",
        "select chatsessions.create_session('new')",
        "select chatsessions.create_session('new', 'x', true)",
        "select chatsessions.delete_session('a1')",
        """select chatsessions.append_messages('a1', '[{"role": "user", "content": "x"}]')""",
        f"select chatsessions.set_active_session('{users.a}', 'a1')",
        "select chatsessions.set_active_session(null, 'a1')",
    ]
    before = await everything_of(conn, users.a)
    for sql in calls:
        assert await sqlstate(conn, None, sql) == "28000", sql
    assert await val(conn, None, "select auth.uid()") is None
    for table in TABLES:
        assert await val(conn, None, f"select count(*) from chatsessions.{table}") == 0
    assert await everything_of(conn, users.a) == before


async def test_nothing_is_executable_or_readable_by_public(conn: asyncpg.Connection) -> None:
    """A fresh role has only PUBLIC's rights: it may execute no function of ours, auth.uid()
    included, and read no table."""
    role = f"cs_probe_{secrets.token_hex(4)}"
    await conn.execute(f"create role {role} nologin noinherit")
    try:
        functions = await all_functions(conn)
        assert len(functions) >= 18
        executable = [
            f["signature"]
            for f in functions
            if await conn.fetchval(
                "select has_function_privilege($1, $2::regprocedure, 'execute')",
                role,
                f["signature"],
            )
        ]
        assert executable == []
        # The same asked of PUBLIC itself.
        assert [
            f["signature"]
            for f in functions
            if await conn.fetchval(
                "select has_function_privilege('public', $1::regprocedure, 'execute')",
                f["signature"],
            )
        ] == []
        tables = await conn.fetch(
            "select c.oid::regclass::text as name from pg_class c"
            " where c.relnamespace = 'chatsessions'::regnamespace and c.relkind in ('r', 'p', 'v')"
        )
        assert len(tables) >= 4
        readable = [
            t["name"]
            for t in tables
            if await conn.fetchval(
                "select has_table_privilege($1, $2, 'select, insert, update, delete')",
                role,
                t["name"],
            )
        ]
        assert readable == []
        assert not await conn.fetchval(
            "select has_schema_privilege($1, 'chatsessions', 'usage')", role
        )
        # No explicit PUBLIC entry in any ACL either.
        public_acl = await conn.fetch(
            """
            select p.oid::regprocedure::text from pg_proc p
             where (p.pronamespace = 'chatsessions'::regnamespace
                    or p.oid = 'auth.uid()'::regprocedure)
               and (p.proacl is null
                    or exists (select 1 from aclexplode(p.proacl) a where a.grantee = 0))
            """
        )
        assert public_acl == []
    finally:
        await conn.execute(f"drop role {role}")


async def test_every_data_table_has_row_level_security(conn: asyncpg.Connection) -> None:
    tables = await conn.fetch(
        "select relname::text, relrowsecurity from pg_class"
        " where relnamespace = 'chatsessions'::regnamespace and relkind in ('r', 'p')"
        " and relname <> 'schema_migrations'"
    )
    assert {t["relname"] for t in tables} == set(TABLES)
    assert [t["relname"] for t in tables if not t["relrowsecurity"]] == []


async def test_the_migrations_table_has_row_level_security(conn: asyncpg.Connection) -> None:
    """chatsessions.schema_migrations (created by chatsessions.db.migrate) is a table of the same
    schema, which a Supabase project exposes to its API for the functions: the rule "RLS on every
    table" holds for it too (Supabase's security advisor flags it otherwise)."""
    enabled = await conn.fetchval(
        "select relrowsecurity from pg_class where oid = 'chatsessions.schema_migrations'::regclass"
    )
    assert enabled, "chatsessions.schema_migrations has row-level security disabled"


async def test_security_definer_only_where_needed(conn: asyncpg.Connection) -> None:
    definers = await conn.fetch(
        """
        select p.proname::text as name, p.proconfig,
               has_function_privilege('authenticated', p.oid, 'execute') as callable
          from pg_proc p
         where (p.pronamespace = 'chatsessions'::regnamespace
                or p.oid = 'auth.uid()'::regprocedure)
           and p.prosecdef
        """
    )
    assert {d["name"] for d in definers} == {
        "update_session_stats_on_insert",
        "update_session_stats_on_delete",
    }
    for d in definers:
        assert d["proconfig"] is not None and 'search_path=""' in d["proconfig"], d
        assert d["callable"] is False, d


# -- ids are per user ------------------------------------------------------------------------------


async def test_the_same_client_id_makes_independent_sessions(
    conn: asyncpg.Connection, database_url: str, users: Owner
) -> None:
    a, b = users.a, users.b
    before = await everything_of(conn, a)

    created = await create(conn, b, "a1", title="B's own")
    assert created["created"] is True and created["title"] == "B's own"
    assert created["user_id"] == str(b) and created["message_count"] == 0
    await activate(conn, b, "a1")
    # The same message id as A's: fine, ids are per user; no conflict, no sight of A's message.
    result = await append(conn, b, "a1", [{"id": "am1", "role": "user", "content": "B's words"}])
    assert [(m["id"], m["content"], m["seq"]) for m in result["messages"]] == [
        ("am1", "B's words", 1)
    ]
    assert (await val(conn, b, QUERIES["get_session"], "a1", "account"))["title"] == "B's own"
    assert await everything_of(conn, a) == before
    await val(conn, b, "select chatsessions.delete_session('a1')")
    assert await everything_of(conn, a) == before
    assert (await val(conn, a, QUERIES["get_session"], "a1", "account"))["title"] == "A's secret"

    # Neither blocks the other: while A holds its own locks (an open switch, an uncommitted
    # creation of 'c'), B creates 'c', switches and appends without waiting.
    other = await connect(database_url)
    try:
        async with as_user(other, a):
            await other.fetchval("select chatsessions.create_session('c', 'A', true)")
            await other.fetchval(
                "select chatsessions.append_messages('c', $1)",
                [{"id": "cm", "role": "user", "content": "x"}],
            )

            async def b_works() -> dict[str, Any]:
                await create(conn, b, "c", title="B")
                await activate(conn, b, "c")
                result: dict[str, Any] = await append(
                    conn, b, "c", [{"id": "cm", "role": "user", "content": "y"}]
                )
                return result

            result = await asyncio.wait_for(b_works(), timeout=5)
            assert result["session"]["title"] == "B" and result["session"]["user_id"] == str(b)
    finally:
        await other.close()
    assert (await val(conn, a, QUERIES["get_session"], "c", "account"))["title"] == "A"
    assert await active_pointers(conn, a) == {"account": "c"}
    assert await active_pointers(conn, b) == {"phone": "b1", "account": "c"}


async def test_one_argument_set_active_session_takes_the_caller_from_the_token(conn) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    await create(conn, alice, "a1")
    await create(conn, alice, "a2", is_active=True)
    result = await val(conn, alice, "select chatsessions.set_active_session('a1')")
    assert result["id"] == "a1" and result["is_active"] is True
    assert await active_pointers(conn, alice) == {"account": "a1"}
    # Bob naming Alice's session reaches nothing, and learns nothing beyond "not found".
    err = await refused(conn, bob, "select chatsessions.set_active_session('a2')")
    assert err.sqlstate == "CS404"
    assert await active_pointers(conn, alice) == {"account": "a1"}
    # Anonymous callers may not call it at all.
    err = await refused(conn, None, "select chatsessions.set_active_session('a2')", role="anon")
    assert err.sqlstate == "42501"
