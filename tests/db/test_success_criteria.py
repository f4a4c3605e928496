"""The plan's six success criteria, checked at the database level by calling the functions in SQL
as a user (role `authenticated`, claims of that user), and reading rows back as the owner.

1. a user can switch active sessions;
2. is_active in the backend updates correctly;
3. only one session per user is active at any time (per scope);
4. timestamps move only for meaningful changes (never for a switch);
5. titles stay editable;
6. changes are atomic.

Plus deletion, deactivation, scopes, idempotent creation, statistics and the message log.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from typing import Any

import asyncpg
import pytest

from chatsessions.db.queries import QUERIES
from conftest import as_user

from .helpers import (
    activate,
    active_pointers,
    append,
    create,
    session_json,
    session_rows,
    sqlstate,
    status,
    val,
)

UPDATE = "select chatsessions.update_session($1, $2, $3, $4)"
DEACTIVATE = "select chatsessions.deactivate_session($1, $2)"
DELETE = "select chatsessions.delete_session($1)"
SET_ACTIVE = "select chatsessions.set_active_session($1, $2)"


async def listing(conn: asyncpg.Connection, user: uuid.UUID, scope: str = "account") -> Any:
    """The service's list_sessions query, as the user: (active_session_id, sessions)."""
    async with as_user(conn, user):
        row = await conn.fetchrow(QUERIES["list_sessions"], scope, None, None, 1000)
    assert row is not None
    return row["active_session_id"], row["sessions"]


async def tick() -> None:
    """Lets the clock move, so that a timestamp that moves is seen to move."""
    await asyncio.sleep(0.005)


# -- 1. switching -----------------------------------------------------------------------------


async def test_user_can_switch_active_session(conn: asyncpg.Connection) -> None:
    user = uuid.uuid4()
    for sid in ("a", "b", "c"):
        await create(conn, user, sid)
    assert await active_pointers(conn, user) == {}

    result = await activate(conn, user, "a")
    assert result["id"] == "a" and result["is_active"] is True
    assert await active_pointers(conn, user) == {"account": "a"}

    result = await activate(conn, user, "b")
    assert result["id"] == "b" and result["is_active"] is True
    assert await active_pointers(conn, user) == {"account": "b"}

    # The API's way: update_session(id, is_active => true).
    result = await val(conn, user, UPDATE, "c", None, True, "account")
    assert result["id"] == "c" and result["is_active"] is True
    assert await active_pointers(conn, user) == {"account": "c"}

    # The original plan's signature, with the caller's own id.
    assert await val(conn, user, SET_ACTIVE, user, "a") is True
    assert await active_pointers(conn, user) == {"account": "a"}

    # Activating the active one again is a no-op that still answers "active".
    before = await conn.fetchval(
        "select activated_at from chatsessions.active_sessions where user_id = $1", user
    )
    await tick()
    assert (await activate(conn, user, "a"))["is_active"] is True
    after = await conn.fetchval(
        "select activated_at from chatsessions.active_sessions where user_id = $1", user
    )
    assert after == before


async def test_switching_to_a_missing_session_fails_and_keeps_the_active_one(
    conn: asyncpg.Connection,
) -> None:
    user = uuid.uuid4()
    await create(conn, user, "a", is_active=True)
    assert await sqlstate(conn, user, "select chatsessions.activate_session('nope')") == "CS404"
    assert await sqlstate(conn, user, UPDATE, "nope", None, True, "account") == "CS404"
    assert await val(conn, user, SET_ACTIVE, user, "nope") is False
    assert await active_pointers(conn, user) == {"account": "a"}


# -- 2. is_active reads back correctly ----------------------------------------------------------


async def test_is_active_reads_back_after_every_change(conn: asyncpg.Connection) -> None:
    user = uuid.uuid4()
    for sid in ("a", "b", "c"):
        await create(conn, user, sid)

    async def check(expected_active: str | None) -> None:
        for sid in ("a", "b", "c"):
            s = await session_json(conn, user, sid)
            assert s is not None and s["is_active"] is (sid == expected_active), (sid, s)
        active_id, sessions = await listing(conn, user)
        assert active_id == expected_active
        assert {s["id"]: s["is_active"] for s in sessions} == {
            sid: sid == expected_active for sid in ("a", "b", "c")
        }
        pointers = await active_pointers(conn, user)
        assert pointers.get("account") == expected_active

    await check(None)
    await activate(conn, user, "b")
    await check("b")
    await val(conn, user, UPDATE, "a", None, True, "account")
    await check("a")
    # Deactivating a session that is not the active one changes nothing.
    result = await val(conn, user, DEACTIVATE, "b", "account")
    assert result["is_active"] is False
    await check("a")
    result = await val(conn, user, UPDATE, "a", None, False, "account")
    assert result["is_active"] is False
    await check(None)


# -- 3. at most one active session per user and scope -------------------------------------------


async def test_new_sessions_are_inactive_unless_asked(conn: asyncpg.Connection) -> None:
    user = uuid.uuid4()
    first = await create(conn, user, "a", is_active=True)
    assert first["is_active"] is True and first["created"] is True

    second = await create(conn, user, "b")
    assert second["is_active"] is False and second["created"] is True
    third = await create(conn, user)  # generated id
    assert third["is_active"] is False and third["created"] is True
    assert await active_pointers(conn, user) == {"account": "a"}

    fourth = await create(conn, user, "d", is_active=True)
    assert fourth["is_active"] is True
    assert await active_pointers(conn, user) == {"account": "d"}
    _, sessions = await listing(conn, user)
    assert len(sessions) == 4
    assert [s["id"] for s in sessions if s["is_active"]] == ["d"]


async def test_primary_key_forbids_a_second_pointer_even_by_direct_insert(
    conn: asyncpg.Connection,
) -> None:
    user = uuid.uuid4()
    await create(conn, user, "a", is_active=True)
    await create(conn, user, "b")

    insert = "insert into chatsessions.active_sessions (scope, session_id) values ($1, $2)"
    assert await sqlstate(conn, user, insert, "account", "b") == "23505"
    assert await sqlstate(conn, user, insert, "account", "a") == "23505"
    two = (
        "insert into chatsessions.active_sessions (scope, session_id)"
        " values ('phone', 'a'), ('phone', 'b')"
    )
    assert await sqlstate(conn, user, two) == "23505"
    # A pointer must reference one of the user's sessions.
    assert await sqlstate(conn, user, insert, "tablet", "missing") == "23503"
    assert await active_pointers(conn, user) == {"account": "a"}

    # Direct writes are allowed where they keep the rule: another scope, or moving the pointer.
    assert await status(conn, user, insert, "phone", "b") == "INSERT 0 1"
    assert (
        await status(
            conn,
            user,
            "update chatsessions.active_sessions set session_id = 'b' where scope = 'account'",
        )
        == "UPDATE 1"
    )
    assert await active_pointers(conn, user) == {"account": "b", "phone": "b"}


async def test_one_active_per_scope_after_every_step_of_a_random_walk(
    conn: asyncpg.Connection,
) -> None:
    """200 random calls (seeded): after each, every scope has at most one active session, and it
    is the one the calls say should be active."""
    user = uuid.uuid4()
    rng = random.Random(20240611)
    scopes = ["account", "phone"]
    expected: dict[str, str] = {}
    existing: list[str] = []
    for step in range(200):
        op = rng.choice(["create", "create_active", "activate", "deactivate", "delete", "update"])
        scope = rng.choice(scopes)
        sid = rng.choice(existing) if existing else None
        if op in ("create", "create_active") or sid is None:
            new_id = f"s{step}"
            active = op == "create_active"
            await create(conn, user, new_id, is_active=active, scope=scope)
            existing.append(new_id)
            if active:
                expected[scope] = new_id
        elif op == "activate":
            await activate(conn, user, sid, scope)
            expected[scope] = sid
        elif op == "deactivate":
            await val(conn, user, DEACTIVATE, sid, scope)
            if expected.get(scope) == sid:
                del expected[scope]
        elif op == "delete":
            await val(conn, user, DELETE, sid)
            existing.remove(sid)
            expected = {k: v for k, v in expected.items() if v != sid}
        else:
            is_active = rng.choice([True, False])
            await val(conn, user, UPDATE, sid, f"title {step}", is_active, scope)
            if is_active:
                expected[scope] = sid
            elif expected.get(scope) == sid:
                del expected[scope]
        assert await active_pointers(conn, user) == expected, (step, op)
        for s in scopes:
            active_id, sessions = await listing(conn, user, s)
            flagged = [x["id"] for x in sessions if x["is_active"]]
            assert len(flagged) <= 1
            assert flagged == ([expected[s]] if s in expected else [])
            assert active_id == expected.get(s)


# -- 4. timestamps -------------------------------------------------------------------------------


async def test_a_switch_changes_no_session_row(conn: asyncpg.Connection) -> None:
    user = uuid.uuid4()
    for sid in ("a", "b", "c"):
        await create(conn, user, sid, title=f"title {sid}")
        await append(conn, user, sid, [{"role": "user", "content": f"hello {sid}"}])
    await activate(conn, user, "a")
    before = await session_rows(conn, user)
    await tick()

    await activate(conn, user, "b")
    await val(conn, user, UPDATE, "c", None, True, "account")
    await val(conn, user, SET_ACTIVE, user, "a")
    await activate(conn, user, "b", "phone")
    await create(conn, user, "c", is_active=True)  # existing: a retried create-and-activate
    await val(conn, user, DEACTIVATE, "c", "account")
    await val(conn, user, UPDATE, "b", None, False, "phone")

    after = await session_rows(conn, user)
    assert after == before  # every column of every session, timestamps included


async def test_a_noop_update_changes_nothing(conn: asyncpg.Connection) -> None:
    user = uuid.uuid4()
    await create(conn, user, "a", title="Same")
    await create(conn, user, "b", title="Other", is_active=True)
    before = await session_rows(conn, user)
    await tick()

    result = await val(conn, user, UPDATE, "a", "Same", None, "account")
    assert result["title"] == "Same"
    await val(conn, user, UPDATE, "b", "Other", True, "account")
    # A direct no-op UPDATE as the user (as the original app's client would send) moves nothing.
    assert (
        await status(
            conn, user, "update chatsessions.chat_sessions set title = title where id = 'a'"
        )
        == "UPDATE 1"
    )
    assert await session_rows(conn, user) == before
    assert await active_pointers(conn, user) == {"account": "b"}


async def test_a_rename_moves_updated_at(conn: asyncpg.Connection) -> None:
    user = uuid.uuid4()
    await create(conn, user, "a", title="Old")
    await create(conn, user, "b", title="Untouched")
    before = await session_rows(conn, user)
    await tick()

    result = await val(conn, user, UPDATE, "a", "New", None, "account")
    assert result["title"] == "New"
    after = await session_rows(conn, user)
    a0, a1 = before["a"], after["a"]
    assert a1["title"] == "New"
    assert a1["updated_at"] > a0["updated_at"]
    assert a1["last_activity"] > a0["last_activity"]
    assert a1["created_at"] == a0["created_at"]
    # A rename does not reorder the listing.
    assert a1["ordered_at"] == a0["ordered_at"]
    assert after["b"] == before["b"]


async def test_appending_a_message_moves_updated_at(conn: asyncpg.Connection) -> None:
    user = uuid.uuid4()
    await create(conn, user, "a")
    await create(conn, user, "b")
    before = await session_rows(conn, user)
    await tick()

    await append(conn, user, "a", [{"role": "user", "content": "hi"}])
    after = await session_rows(conn, user)
    assert after["a"]["updated_at"] > before["a"]["updated_at"]
    assert after["a"]["last_activity"] > before["a"]["last_activity"]
    assert after["a"]["created_at"] == before["a"]["created_at"]
    assert after["b"] == before["b"]


async def test_writing_timestamps_directly_has_no_effect(conn: asyncpg.Connection) -> None:
    user = uuid.uuid4()
    await create(conn, user, "a")
    before = await session_rows(conn, user)

    # As the owner (who may write every column), the trigger keeps the timestamps.
    await conn.execute(
        "update chatsessions.chat_sessions set updated_at = '2000-01-01', "
        "last_activity = '2000-01-01', created_at = '2000-01-01' "
        "where user_id = $1 and id = 'a'",
        user,
    )
    assert await session_rows(conn, user) == before

    # As the user, the columns are not even writable.
    for column in ("updated_at", "last_activity", "created_at"):
        state = await sqlstate(
            conn, user, f"update chatsessions.chat_sessions set {column} = now() where id = 'a'"
        )
        assert state == "42501", column
    assert await session_rows(conn, user) == before


# -- 5. titles -----------------------------------------------------------------------------------


async def test_titles_are_editable(conn: asyncpg.Connection) -> None:
    user = uuid.uuid4()
    created = await create(conn, user, "a", title="First")
    assert created["title"] == "First"
    assert (await create(conn, user, "b"))["title"] == "New conversation"

    assert (await val(conn, user, UPDATE, "a", "Second", None, "account"))["title"] == "Second"
    assert (await session_json(conn, user, "a"))["title"] == "Second"  # type: ignore[index]
    # Directly in SQL, as the original app did.
    await status(conn, user, "update chatsessions.chat_sessions set title = 'Third' where id = 'a'")
    assert (await session_json(conn, user, "a"))["title"] == "Third"  # type: ignore[index]

    longest = "é" * 255  # characters, not bytes
    assert (await val(conn, user, UPDATE, "a", longest, None, "account"))["title"] == longest
    assert (await session_rows(conn, user))["a"]["title"] == longest


async def test_too_long_or_blank_titles_are_refused(conn: asyncpg.Connection) -> None:
    user = uuid.uuid4()
    await create(conn, user, "a", title="Kept")
    before = await session_rows(conn, user)

    assert await sqlstate(conn, user, UPDATE, "a", "x" * 256, None, "account") == "22001"
    for blank in ("", " ", " " * 255):
        assert await sqlstate(conn, user, UPDATE, "a", blank, None, "account") == "23514"
    assert await sqlstate(
        conn, user, "update chatsessions.chat_sessions set title = '' where id = 'a'"
    ) == ("23514")
    assert await session_rows(conn, user) == before

    create_sql = "select chatsessions.create_session($1, $2)"
    assert await sqlstate(conn, user, create_sql, "b", "y" * 256) == "22001"
    assert await sqlstate(conn, user, create_sql, "c", "  ") == "23514"
    assert set(await session_rows(conn, user)) == {"a"}


async def test_titles_of_other_white_space_only_are_refused(conn: asyncpg.Connection) -> None:
    """A title of tabs or line breaks is as blank as one of spaces: the API refuses it (str.strip),
    so must the database, which direct SQL callers (e.g. a Supabase client) reach without the API.
    """
    user = uuid.uuid4()
    await create(conn, user, "a", title="Kept")
    before = await session_rows(conn, user)
    accepted = []
    for blank in ("\t", "\n", " \t \r\n "):
        try:
            await val(conn, user, UPDATE, "a", blank, None, "account")
        except asyncpg.CheckViolationError:
            continue
        accepted.append(blank)
        await conn.execute(
            "update chatsessions.chat_sessions set title = 'Kept' where user_id = $1", user
        )
    try:
        created = await create(conn, user, "b", title="\t\n")
    except asyncpg.CheckViolationError:
        created = None
    assert accepted == [], f"blank titles stored: {accepted!r}"
    assert created is None, "a session with a blank title was created"
    assert (await session_rows(conn, user))["a"]["title"] == before["a"]["title"]


# -- 6. atomicity --------------------------------------------------------------------------------


async def test_rename_and_switch_in_one_call(conn: asyncpg.Connection) -> None:
    user = uuid.uuid4()
    await create(conn, user, "a", title="A", is_active=True)
    await create(conn, user, "b", title="B")
    before = await session_rows(conn, user)
    await tick()

    result = await val(conn, user, UPDATE, "b", "B renamed", True, "account")
    assert result["title"] == "B renamed" and result["is_active"] is True
    after = await session_rows(conn, user)
    assert after["b"]["title"] == "B renamed"
    assert after["b"]["updated_at"] > before["b"]["updated_at"]
    assert after["a"] == before["a"]
    assert await active_pointers(conn, user) == {"account": "b"}

    result = await val(conn, user, UPDATE, "b", "B again", False, "account")
    assert result["title"] == "B again" and result["is_active"] is False
    assert await active_pointers(conn, user) == {}


@pytest.mark.parametrize(
    ("title", "scope", "expected"),
    [
        ("A new title", "not a scope!", "23514"),  # the rename is undone with the failed switch
        ("A new title", "", "23514"),
        ("x" * 256, "account", "22001"),
        ("   ", "account", "23514"),
    ],
)
async def test_a_failing_call_changes_nothing(
    conn: asyncpg.Connection, title: str, scope: str, expected: str
) -> None:
    user = uuid.uuid4()
    await create(conn, user, "a", title="A", is_active=True)
    await create(conn, user, "b", title="B")
    before = await session_rows(conn, user)

    assert await sqlstate(conn, user, UPDATE, "b", title, True, scope) == expected
    assert await session_rows(conn, user) == before
    assert await active_pointers(conn, user) == {"account": "a"}

    # Same for a deactivation of the active one together with a bad title.
    if expected == "22001":
        assert await sqlstate(conn, user, UPDATE, "a", title, False, "account") == expected
        assert await session_rows(conn, user) == before
        assert await active_pointers(conn, user) == {"account": "a"}


async def test_a_call_on_a_missing_session_changes_nothing(conn: asyncpg.Connection) -> None:
    user = uuid.uuid4()
    await create(conn, user, "a", is_active=True)
    before = await session_rows(conn, user)
    assert await sqlstate(conn, user, UPDATE, "missing", "T", True, "account") == "CS404"
    assert await sqlstate(conn, user, UPDATE, "missing", "T", None, "account") == "CS404"
    assert await sqlstate(conn, user, UPDATE, "missing", None, False, "account") == "CS404"
    assert await sqlstate(conn, user, DEACTIVATE, "missing", "account") == "CS404"
    assert await sqlstate(conn, user, DELETE, "missing") == "CS404"
    assert await session_rows(conn, user) == before
    assert await active_pointers(conn, user) == {"account": "a"}


# -- deletion, deactivation, scopes, idempotent creation ------------------------------------------


async def test_deleting_the_active_session_leaves_none_active(conn: asyncpg.Connection) -> None:
    user = uuid.uuid4()
    await create(conn, user, "a", is_active=True)
    await create(conn, user, "b")
    await activate(conn, user, "a", "phone")
    await activate(conn, user, "b", "tablet")
    await append(conn, user, "a", [{"role": "user", "content": "bye"}])
    before = await session_rows(conn, user)

    await val(conn, user, DELETE, "a")
    assert await active_pointers(conn, user) == {"tablet": "b"}
    after = await session_rows(conn, user)
    assert set(after) == {"b"} and after["b"] == before["b"]
    assert (
        await conn.fetchval(
            "select count(*) from chatsessions.chat_messages"
            " where user_id = $1 and session_id = 'a'",
            user,
        )
        == 0
    )
    active_id, sessions = await listing(conn, user)
    assert active_id is None and not any(s["is_active"] for s in sessions)
    assert await sqlstate(conn, user, DELETE, "a") == "CS404"
    assert await sqlstate(conn, user, "select chatsessions.activate_session('a')") == "CS404"


async def test_deactivate(conn: asyncpg.Connection) -> None:
    user = uuid.uuid4()
    await create(conn, user, "a", is_active=True)
    await create(conn, user, "b")
    await activate(conn, user, "a", "phone")
    before = await session_rows(conn, user)

    assert (await val(conn, user, DEACTIVATE, "b", "account"))["is_active"] is False
    assert await active_pointers(conn, user) == {"account": "a", "phone": "a"}
    result = await val(conn, user, DEACTIVATE, "a", "account")
    assert result["id"] == "a" and result["is_active"] is False
    assert await active_pointers(conn, user) == {"phone": "a"}
    # Idempotent.
    assert (await val(conn, user, DEACTIVATE, "a", "account"))["is_active"] is False
    assert await active_pointers(conn, user) == {"phone": "a"}
    assert await session_rows(conn, user) == before


async def test_scopes_are_independent(conn: asyncpg.Connection) -> None:
    user = uuid.uuid4()
    for sid in ("a", "b", "c"):
        await create(conn, user, sid)
    await activate(conn, user, "a")
    await activate(conn, user, "b", "device:phone-1")
    await create(conn, user, "d", is_active=True, scope="device:laptop")
    assert await active_pointers(conn, user) == {
        "account": "a",
        "device:phone-1": "b",
        "device:laptop": "d",
    }
    assert (await session_json(conn, user, "a", "account"))["is_active"] is True  # type: ignore[index]
    assert (await session_json(conn, user, "a", "device:phone-1"))["is_active"] is False  # type: ignore[index]
    assert (await session_json(conn, user, "b", "device:phone-1"))["is_active"] is True  # type: ignore[index]

    await activate(conn, user, "c", "device:phone-1")
    assert await active_pointers(conn, user) == {
        "account": "a",
        "device:phone-1": "c",
        "device:laptop": "d",
    }
    await val(conn, user, DEACTIVATE, "a", "device:phone-1")  # not active there: no change
    await val(conn, user, DEACTIVATE, "a", "account")
    assert await active_pointers(conn, user) == {"device:phone-1": "c", "device:laptop": "d"}
    await activate(conn, user, "c")  # the same session active in two scopes
    await val(conn, user, DELETE, "c")
    assert await active_pointers(conn, user) == {"device:laptop": "d"}
    for scope in ("account", "device:phone-1", "device:laptop"):
        active_id, sessions = await listing(conn, user, scope)
        assert active_id == ("d" if scope == "device:laptop" else None)
        assert [s["id"] for s in sessions if s["is_active"]] == ([active_id] if active_id else [])


async def test_creating_an_existing_id_returns_it_unchanged(conn: asyncpg.Connection) -> None:
    user = uuid.uuid4()
    first = await create(conn, user, "x", title="Original")
    assert first["created"] is True and first["title"] == "Original"
    await append(conn, user, "x", [{"role": "user", "content": "hi"}])
    before = await session_rows(conn, user)
    await tick()

    again = await create(conn, user, "x", title="Retitled")
    assert again["created"] is False
    assert again["title"] == "Original" and again["message_count"] == 1
    assert await session_rows(conn, user) == before

    # A retried create-and-activate activates the existing session, still without touching it.
    again = await create(conn, user, "x", title="Retitled", is_active=True)
    assert again["created"] is False and again["is_active"] is True
    assert await session_rows(conn, user) == before
    assert await active_pointers(conn, user) == {"account": "x"}

    generated = await create(conn, user)
    assert generated["created"] is True
    uuid.UUID(generated["id"])


# -- statistics and the message log ---------------------------------------------------------------


async def recomputed_stats(conn: asyncpg.Connection, user: uuid.UUID, sid: str) -> dict[str, Any]:
    """The statistics recomputed from scratch out of the messages (the definition)."""
    row = await conn.fetchrow(
        """
        select count(*) filter (where error_message is null) as message_count,
               coalesce(sum(total_tokens) filter (where error_message is null), 0) as total_tokens,
               (array_agg(model order by seq desc)
                    filter (where error_message is null and model is not null))[1] as last_model,
               (array_agg(left(content, 280) order by seq desc)
                    filter (where error_message is null))[1] as last_message_preview,
               (array_agg(created_at order by seq desc)
                    filter (where error_message is null))[1] as last_message_timestamp
          from chatsessions.chat_messages where user_id = $1 and session_id = $2
        """,
        user,
        sid,
    )
    return dict(row)


async def stored_stats(conn: asyncpg.Connection, user: uuid.UUID, sid: str) -> dict[str, Any]:
    row = await conn.fetchrow(
        "select message_count, total_tokens, last_model, last_message_preview, "
        "last_message_timestamp from chatsessions.chat_sessions where user_id = $1 and id = $2",
        user,
        sid,
    )
    return dict(row)


async def test_statistics_are_exact(conn: asyncpg.Connection) -> None:
    user = uuid.uuid4()
    await create(conn, user, "s")
    await create(conn, user, "other")
    long_text = "word " * 100  # 500 characters: the preview keeps 280
    batch = [
        {"id": "m1", "role": "user", "content": "Hello", "input_tokens": 10},
        {
            "id": "m2",
            "role": "assistant",
            "content": long_text,
            "model": "model-a",
            "input_tokens": 5,
            "output_tokens": 7,
        },
        {
            "id": "m3",
            "role": "assistant",
            "content": "failed",
            "model": "model-broken",
            "input_tokens": 100,
            "output_tokens": 100,
            "error_message": "upstream timeout",
        },
    ]
    result = await append(conn, user, "s", batch)
    messages = result["messages"]
    assert [m["id"] for m in messages] == ["m1", "m2", "m3"]
    assert [m["seq"] for m in messages] == [1, 2, 3]
    assert [m["total_tokens"] for m in messages] == [10, 12, 200]  # default: input + output
    session = result["session"]
    assert session["message_count"] == 2
    assert session["total_tokens"] == 22
    assert session["last_model"] == "model-a"
    assert session["last_message_preview"] == long_text[:280]
    stats = await stored_stats(conn, user, "s")
    m2_at = await conn.fetchval(
        "select created_at from chatsessions.chat_messages where user_id = $1 and id = 'm2'", user
    )
    assert stats["last_message_timestamp"] == m2_at
    assert stats == await recomputed_stats(conn, user, "s")

    # A retry of the same batch inserts nothing, counts nothing, and answers the same messages.
    before = await session_rows(conn, user)
    retry = await append(conn, user, "s", batch)
    assert [(m["id"], m["seq"]) for m in retry["messages"]] == [("m1", 1), ("m2", 2), ("m3", 3)]
    assert await session_rows(conn, user) == before

    # A second batch, partly a retry, with an explicit total and no model.
    result = await append(
        conn,
        user,
        "s",
        [
            {"id": "m2", "role": "assistant", "content": long_text, "model": "model-a"},
            {"id": "m4", "role": "user", "content": "Thanks", "total_tokens": 3},
            {"id": "m5", "role": "system", "content": "note", "input_tokens": 1},
        ],
    )
    assert [(m["id"], m["seq"]) for m in result["messages"]] == [("m2", 2), ("m4", 4), ("m5", 5)]
    stats = await stored_stats(conn, user, "s")
    assert stats["message_count"] == 4
    assert stats["total_tokens"] == 22 + 3 + 1
    assert stats["last_model"] == "model-a"  # the newest message with a model
    assert stats["last_message_preview"] == "note"
    assert stats == await recomputed_stats(conn, user, "s")

    # A batch of failed generations only counts nothing and moves nothing.
    before = await session_rows(conn, user)
    await append(
        conn, user, "s", [{"role": "assistant", "content": "x", "error_message": "e", "model": "m"}]
    )
    assert await session_rows(conn, user) == before

    # Single appends, then the sequence is 1..n in order of arrival.
    for i in range(3):
        await append(conn, user, "s", [{"id": f"n{i}", "role": "user", "content": f"n{i}"}])
    seqs = await conn.fetch(
        "select id::text, seq from chatsessions.chat_messages"
        " where user_id = $1 and session_id = 's' order by seq",
        user,
    )
    assert [r["seq"] for r in seqs] == list(range(1, len(seqs) + 1))
    assert [r["id"] for r in seqs][-3:] == ["n0", "n1", "n2"]
    assert await stored_stats(conn, user, "s") == await recomputed_stats(conn, user, "s")
    other = await stored_stats(conn, user, "other")
    assert other["message_count"] == 0 and other["total_tokens"] == 0
    assert other["last_model"] is None and other["last_message_timestamp"] is None


async def test_a_message_id_of_another_session_is_a_conflict(conn: asyncpg.Connection) -> None:
    user = uuid.uuid4()
    await create(conn, user, "a")
    await create(conn, user, "b")
    await append(conn, user, "a", [{"id": "shared", "role": "user", "content": "in a"}])
    before = await session_rows(conn, user)

    batch = [
        {"id": "fresh", "role": "user", "content": "new"},
        {"id": "shared", "role": "user", "content": "in b?"},
    ]
    assert await sqlstate(conn, user, "select chatsessions.append_messages('b', $1)", batch) == (
        "CS409"
    )
    # Nothing of the batch went in.
    assert await session_rows(conn, user) == before
    assert await conn.fetchval(
        "select count(*) from chatsessions.chat_messages where user_id = $1", user
    ) == (1)


async def test_appending_to_a_missing_session_fails(conn: asyncpg.Connection) -> None:
    user = uuid.uuid4()
    await create(conn, user, "a")
    sql = "select chatsessions.append_messages($1, $2)"
    assert await sqlstate(conn, user, sql, "nope", [{"role": "user", "content": "x"}]) == "CS404"
    assert await sqlstate(conn, user, sql, "a", {"role": "user", "content": "x"}) == "22023"
    assert await conn.fetchval(
        "select count(*) from chatsessions.chat_messages where user_id = $1", user
    ) == (0)


async def test_deleting_messages_as_owner_recomputes_statistics(conn: asyncpg.Connection) -> None:
    user = uuid.uuid4()
    await create(conn, user, "s")
    await append(
        conn,
        user,
        "s",
        [
            {"id": "d1", "role": "user", "content": "one", "input_tokens": 4},
            {
                "id": "d2",
                "role": "assistant",
                "content": "two",
                "model": "m-old",
                "output_tokens": 6,
            },
        ],
    )
    await append(
        conn,
        user,
        "s",
        [
            {"id": "d3", "role": "user", "content": "three", "input_tokens": 2},
            {
                "id": "d4",
                "role": "assistant",
                "content": "oops",
                "model": "m-x",
                "error_message": "e",
            },
            {
                "id": "d5",
                "role": "assistant",
                "content": "five",
                "model": "m-new",
                "total_tokens": 9,
            },
        ],
    )
    assert (await stored_stats(conn, user, "s"))["total_tokens"] == 4 + 6 + 2 + 9

    # The newest message goes: the model, preview and time fall back to the previous ones.
    await conn.execute(
        "delete from chatsessions.chat_messages where user_id = $1 and id = 'd5'", user
    )
    stats = await stored_stats(conn, user, "s")
    assert stats == await recomputed_stats(conn, user, "s")
    assert (stats["message_count"], stats["total_tokens"]) == (3, 12)
    assert stats["last_model"] == "m-old" and stats["last_message_preview"] == "three"

    # An error message goes: nothing changes.
    await conn.execute(
        "delete from chatsessions.chat_messages where user_id = $1 and id = 'd4'", user
    )
    assert await stored_stats(conn, user, "s") == stats

    # Several at once, then all.
    await conn.execute(
        "delete from chatsessions.chat_messages where user_id = $1 and id in ('d2', 'd3')", user
    )
    stats = await stored_stats(conn, user, "s")
    assert stats == await recomputed_stats(conn, user, "s")
    assert (stats["message_count"], stats["total_tokens"], stats["last_model"]) == (1, 4, None)
    assert stats["last_message_preview"] == "one"
    await conn.execute("delete from chatsessions.chat_messages where user_id = $1", user)
    stats = await stored_stats(conn, user, "s")
    assert stats == {
        "message_count": 0,
        "total_tokens": 0,
        "last_model": None,
        "last_message_preview": None,
        "last_message_timestamp": None,
    }
    # Numbering continues after the deleted ones.
    result = await append(conn, user, "s", [{"role": "user", "content": "again"}])
    assert result["messages"][0]["seq"] == 1


async def test_messages_cannot_be_updated(conn: asyncpg.Connection) -> None:
    user = uuid.uuid4()
    await create(conn, user, "s")
    await append(conn, user, "s", [{"id": "m", "role": "user", "content": "as written"}])
    before = await conn.fetchrow(
        "select * from chatsessions.chat_messages where user_id = $1 and id = 'm'", user
    )
    # As the owner, the trigger refuses.
    with pytest.raises(asyncpg.PostgresError) as info:
        await conn.execute(
            "update chatsessions.chat_messages set content = 'edited' where user_id = $1", user
        )
    assert info.value.sqlstate == "0A000"
    # As the user, there is no UPDATE right at all.
    for assignment in ("content = 'edited'", "total_tokens = 1000", "seq = 7"):
        state = await sqlstate(
            conn, user, f"update chatsessions.chat_messages set {assignment} where id = 'm'"
        )
        assert state == "42501", assignment
    after = await conn.fetchrow(
        "select * from chatsessions.chat_messages where user_id = $1 and id = 'm'", user
    )
    assert after == before


async def test_message_order_is_the_servers(conn: asyncpg.Connection) -> None:
    """seq and created_at come from the database whatever the client sends."""
    user = uuid.uuid4()
    await create(conn, user, "s")
    result = await append(
        conn,
        user,
        "s",
        [
            {"id": "z", "role": "user", "content": "first", "seq": 99, "created_at": "2001-01-01"},
            {"id": "a", "role": "assistant", "content": "second"},
        ],
    )
    assert [(m["id"], m["seq"]) for m in result["messages"]] == [("z", 1), ("a", 2)]
    assert all(not m["created_at"].startswith("2001") for m in result["messages"])
    # Inserting seq directly is not allowed to the user.
    state = await sqlstate(
        conn,
        user,
        "insert into chatsessions.chat_messages (session_id, id, role, content, seq)"
        " values ('s', 'q', 'user', 'x', 1)",
    )
    assert state == "42501"
    counts = Counter(
        r["seq"]
        for r in await conn.fetch(
            "select seq from chatsessions.chat_messages where user_id = $1", user
        )
    )
    assert max(counts.values()) == 1


async def test_a_batch_using_one_id_for_two_messages_is_refused(conn: asyncpg.Connection) -> None:
    """Two different messages under one id in one call: storing the first and silently dropping
    the second while reporting success loses a message. The call must fail (an error the service
    answers with a 4xx: CS409, or a data/integrity error of class 22/23) and store nothing."""
    user = uuid.uuid4()
    await create(conn, user, "s")
    before = await session_rows(conn, user)
    batch = [
        {"id": "dup", "role": "user", "content": "first", "input_tokens": 4},
        {"id": "dup", "role": "assistant", "content": "second", "output_tokens": 4},
        {"id": "next", "role": "user", "content": "third"},
    ]
    try:
        result = await append(conn, user, "s", batch)
    except asyncpg.PostgresError as e:
        assert e.sqlstate == "CS409" or e.sqlstate[:2] in ("22", "23"), e
    else:
        pytest.fail(
            "the call succeeded and returned "
            f"{[(m['id'], m['content']) for m in result['messages']]}: the message 'second' is lost"
        )
    assert await session_rows(conn, user) == before
    assert (
        await conn.fetchval(
            "select count(*) from chatsessions.chat_messages where user_id = $1", user
        )
        == 0
    )
