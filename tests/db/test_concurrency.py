"""Concurrent switches, creations, deletions and appends on ONE user, from many connections.

Each call runs in its own transaction as the user, like an API request. A watcher polls all the
while. "At most one pointer per (user, scope)" holds by the primary key, so the watcher also checks
what could really break: every pointer references an existing session, the is_active that readers
derive per session agrees with the pointer, and at the end the statistics and sequence numbers of
every session are exact. No deadlock (40P01) and no error but CS404 (a target deleted by a
concurrent request) may occur.

The last test rebuilds the original plan's design in a schema of its own and runs the same load on
it, to show that the problem this design solves is real.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from conftest import act_as, as_user

from .helpers import connect, create, session_rows

WORKERS = 8
DURATION = 4.0  # seconds of load per test
PLAN_DURATION = 2.0

EXPECTED = "CS404"  # the target was deleted by a concurrent request


@dataclass
class Load:
    """What the workers and the watcher saw."""

    ok: Counter[str] = field(default_factory=Counter)
    not_found: Counter[str] = field(default_factory=Counter)
    deadlocks: int = 0
    unexpected: list[tuple[str, str, str]] = field(default_factory=list)
    polls: int = 0
    violations: list[str] = field(default_factory=list)
    max_active_seen: int = 0


# op(connection, rng, unique number, label): does one call; sets label[0] to its kind first.
Op = Callable[[asyncpg.Connection, random.Random, int, list[str]], Awaitable[None]]


async def run_load(
    url: str,
    user: uuid.UUID,
    op: Op,
    watch: Callable[[asyncpg.Connection, Load], Awaitable[None]],
    duration: float,
    server_settings: dict[str, str] | None = None,
) -> Load:
    """WORKERS connections calling `op` in a loop for `duration` seconds (each call in its own
    transaction as `user`), and one watcher connection calling `watch` in a loop."""
    load = Load()
    conns = [await connect(url, server_settings) for _ in range(WORKERS + 1)]
    deadline = time.monotonic() + duration
    done = asyncio.Event()

    def finished() -> bool:
        return time.monotonic() >= deadline

    async def worker(n: int, c: asyncpg.Connection) -> None:
        rng = random.Random(f"{user}-{n}")
        i = 0
        while not finished():
            i += 1
            label = ["?"]
            try:
                async with as_user(c, user):
                    await op(c, rng, n * 1_000_000 + i, label)
                load.ok[label[0]] += 1
            except asyncpg.PostgresError as e:
                if e.sqlstate == "40P01":
                    load.deadlocks += 1
                elif e.sqlstate == EXPECTED:
                    load.not_found[label[0]] += 1
                else:
                    load.unexpected.append((label[0], e.sqlstate or "", str(e)))
            except AssertionError as e:  # a wrong answer from a call
                load.unexpected.append((label[0], "wrong result", str(e)))

    async def watcher(c: asyncpg.Connection) -> None:
        while not done.is_set():
            await watch(c, load)
            load.polls += 1
            await asyncio.sleep(0)

    try:
        watching = asyncio.create_task(watcher(conns[-1]))
        await asyncio.gather(*(worker(n, c) for n, c in enumerate(conns[:-1])))
        done.set()
        await watching
    finally:
        for c in conns:
            await c.close()
    return load


# -- our design --------------------------------------------------------------------------------


def our_mix(scopes: list[str]) -> Op:
    """activate_session, create_session(..., is_active => true), delete_session of the currently
    active session, a few deactivations and appends; returns the name of what it did."""

    async def op(c: asyncpg.Connection, rng: random.Random, n: int, label: list[str]) -> None:
        scope = rng.choice(scopes)
        roll = rng.random()
        active = "select session_id::text from chatsessions.active_sessions where scope = $1"
        if roll < 0.35:
            label[0] = "activate"
            target = await c.fetchval(
                "select id::text from chatsessions.chat_sessions order by random() limit 1"
            )
            result = await c.fetchval(
                "select chatsessions.activate_session($1, $2)", target or "none", scope
            )
            assert result["is_active"] is True and result["id"] == target, result
        elif roll < 0.60:
            label[0] = "create_active"
            result = await c.fetchval(
                "select chatsessions.create_session($1, $2, true, $3)", f"s{n}", f"t{n}", scope
            )
            assert result["is_active"] is True and result["created"] is True, result
        elif roll < 0.85:
            label[0] = "delete_active"
            target = await c.fetchval(active, scope)
            await c.execute("select chatsessions.delete_session($1)", target or "none")
        elif roll < 0.90:
            label[0] = "deactivate"
            target = await c.fetchval(active, scope)
            result = await c.fetchval(
                "select chatsessions.deactivate_session($1, $2)", target or "none", scope
            )
            assert result["is_active"] is False, result
        else:
            label[0] = "append"
            target = await c.fetchval(active, scope)
            messages = [
                {"id": f"m{n}a", "role": "user", "content": "q", "input_tokens": 3},
                {
                    "id": f"m{n}b",
                    "role": "assistant",
                    "content": "a",
                    "model": "x",
                    "output_tokens": 5,
                },
            ]
            await c.fetchval(
                "select chatsessions.append_messages($1, $2, $3)", target or "none", messages, scope
            )

    return op


def our_watch(user: uuid.UUID, scopes: list[str]) -> Callable[[asyncpg.Connection, Load], Any]:
    async def watch(c: asyncpg.Connection, load: Load) -> None:
        # As the owner: one statement, one snapshot.
        row = await c.fetchrow(
            """
            select
              (select coalesce(max(n), 0) from (
                  select count(*) as n from chatsessions.active_sessions
                   where user_id = $1 group by scope) x) as most_per_scope,
              (select count(*) from chatsessions.active_sessions a
                where a.user_id = $1 and not exists (
                      select 1 from chatsessions.chat_sessions s
                       where s.user_id = a.user_id and s.id = a.session_id)) as dangling
            """,
            user,
        )
        load.max_active_seen = max(load.max_active_seen, row["most_per_scope"])
        if row["most_per_scope"] > 1:
            load.violations.append(f"{row['most_per_scope']} pointers in one scope")
        if row["dangling"]:
            load.violations.append(f"{row['dangling']} pointers to missing sessions")
        # As the user, what a reader of the sessions derives: is_active per session and scope.
        async with as_user(c, user):
            for scope in scopes:
                r = await c.fetchrow(
                    """
                    select count(*) filter (
                               where (chatsessions.session_json(s, $1) ->> 'is_active')::boolean
                           ) as flagged,
                           (select count(*) from chatsessions.active_sessions a
                             where a.scope = $1) as pointers
                      from chatsessions.chat_sessions s
                    """,
                    scope,
                )
                load.max_active_seen = max(load.max_active_seen, r["flagged"])
                if r["flagged"] > 1 or r["flagged"] != r["pointers"]:
                    load.violations.append(
                        f"scope {scope}: {r['flagged']} sessions flagged active, "
                        f"{r['pointers']} pointers"
                    )

    return watch


async def check_final_state(conn: asyncpg.Connection, user: uuid.UUID) -> None:
    """At most one active per scope, and it exists; statistics and numbering exact."""
    pointers = await conn.fetch(
        "select scope::text, session_id::text, exists (select 1 from chatsessions.chat_sessions s"
        " where s.user_id = a.user_id and s.id = a.session_id) as present"
        " from chatsessions.active_sessions a where a.user_id = $1",
        user,
    )
    assert all(p["present"] for p in pointers), pointers
    assert max(Counter(p["scope"] for p in pointers).values(), default=0) <= 1
    wrong = await conn.fetch(
        """
        select s.id::text, s.message_count, s.total_tokens, m.n, m.tokens
          from chatsessions.chat_sessions s
          left join lateral (
                select count(*) filter (where error_message is null) as n,
                       coalesce(sum(total_tokens) filter (where error_message is null), 0)
                           as tokens,
                       count(*) as all_n, coalesce(max(seq), 0) as max_seq,
                       count(distinct seq) as distinct_seq
                  from chatsessions.chat_messages x
                 where x.user_id = s.user_id and x.session_id = s.id) m on true
         where s.user_id = $1
           and (s.message_count <> m.n or s.total_tokens <> m.tokens
                or m.max_seq <> m.all_n or m.distinct_seq <> m.all_n)
        """,
        user,
    )
    assert wrong == [], wrong


def summary(load: Load) -> str:
    return (
        f"ok={dict(load.ok)} not_found={dict(load.not_found)} deadlocks={load.deadlocks} "
        f"unexpected={len(load.unexpected)} polls={load.polls} violations={len(load.violations)}"
    )


async def _our_load(database_url: str, conn: asyncpg.Connection, scopes: list[str]) -> Load:
    user = uuid.uuid4()
    for i in range(5):
        await create(conn, user, f"seed{i}", is_active=i == 0, scope=scopes[i % len(scopes)])
    load = await run_load(database_url, user, our_mix(scopes), our_watch(user, scopes), DURATION)
    print(f"\nour design, scopes {scopes}: {summary(load)}")
    assert load.deadlocks == 0, summary(load)
    assert load.unexpected == [], load.unexpected[:5]
    assert load.violations == [], load.violations[:5]
    # The load was real: every kind of call succeeded many times, and the watcher kept looking.
    for name in ("activate", "create_active", "delete_active", "append"):
        assert load.ok[name] >= 20, summary(load)
    assert load.polls >= 20, summary(load)
    await check_final_state(conn, user)
    return load


async def test_concurrent_switches_on_one_user(database_url: str, conn: asyncpg.Connection) -> None:
    await _our_load(database_url, conn, ["account"])


async def test_concurrent_switches_across_two_scopes(
    database_url: str, conn: asyncpg.Connection
) -> None:
    await _our_load(database_url, conn, ["account", "device:phone"])


async def test_concurrent_appends_to_one_session_number_and_count_exactly(
    database_url: str, conn: asyncpg.Connection
) -> None:
    """Many connections appending to the same session (some retrying the same ids) at once."""
    user = uuid.uuid4()
    await create(conn, user, "s", is_active=True)
    conns = [await connect(database_url) for _ in range(WORKERS)]
    errors: list[str] = []

    async def appender(n: int, c: asyncpg.Connection) -> None:
        for i in range(30):
            # Every batch is sent twice (a retry), from two different connections.
            batch_no = (n // 2) * 100 + i
            batch = [
                {"id": f"b{batch_no}-{k}", "role": "user", "content": f"{k}", "total_tokens": 2}
                for k in range(3)
            ]
            try:
                async with as_user(c, user):
                    await c.fetchval("select chatsessions.append_messages('s', $1)", batch)
            except asyncpg.PostgresError as e:
                errors.append(f"{e.sqlstate}: {e}")

    try:
        await asyncio.gather(*(appender(n, c) for n, c in enumerate(conns)))
    finally:
        for c in conns:
            await c.close()
    assert errors == []
    expected = (WORKERS // 2) * 30 * 3
    row = await conn.fetchrow(
        "select message_count, total_tokens from chatsessions.chat_sessions"
        " where user_id = $1 and id = 's'",
        user,
    )
    assert (row["message_count"], row["total_tokens"]) == (expected, 2 * expected)
    await check_final_state(conn, user)


# -- the original plan's design, under the same load ---------------------------------------------

# The benchmarks' reconstruction of the plan's design (see that file's header).
PLAN_SQL = (Path(__file__).parents[2] / "bench" / "plan_design.sql").read_text()


def plan_mix(schema: str, user: uuid.UUID) -> Op:
    """The same mix, written against the plan: switches through its set_active_session, a
    create-and-activate as an INSERT (active by the plan's default) followed by the switch in the
    same transaction, a deletion of the active session, appends to the active session."""

    async def op(c: asyncpg.Connection, rng: random.Random, n: int, label: list[str]) -> None:
        roll = rng.random()
        if roll < 0.35:
            label[0] = "activate"
            target = await c.fetchval(
                f"select id from {schema}.chat_sessions where user_id = $1"
                " order by random() limit 1",
                user,
            )
            await c.fetchval(f"select {schema}.set_active_session($1, $2)", user, target)
            return
        if roll < 0.60:
            label[0] = "create_active"
            await c.execute(
                f"insert into {schema}.chat_sessions (id, user_id, title) values ($1, $2, $3)",
                f"s{n}",
                user,
                f"t{n}",
            )
            await c.fetchval(f"select {schema}.set_active_session($1, $2)", user, f"s{n}")
            return
        target = await c.fetchval(
            f"select id from {schema}.chat_sessions where user_id = $1 and is_active limit 1",
            user,
        )
        if roll < 0.90:
            label[0] = "delete_active"
            await c.execute(f"delete from {schema}.chat_sessions where id = $1", target)
            return
        label[0] = "append"
        if target is not None:
            await c.execute(
                f"insert into {schema}.chat_messages (id, session_id, role, content)"
                " values ($1, $2, 'user', 'q')",
                f"m{n}",
                target,
            )

    return op


async def test_plan_design_breaks_under_concurrency(
    database_url: str, conn: asyncpg.Connection
) -> None:
    """The plan's boolean-per-session design under the load the tests above put on ours: it
    deadlocks and/or leaves more than one session active. Skips (rather than passes) if neither
    shows within the time given."""
    schema = f"plan_{secrets.token_hex(4)}"
    user = uuid.uuid4()
    await conn.execute(PLAN_SQL.format(schema=schema))
    try:
        for i in range(5):
            await conn.execute(
                f"insert into {schema}.chat_sessions (id, user_id, is_active) values ($1, $2, $3)",
                f"seed{i}",
                user,
                i == 0,
            )

        async def watch(c: asyncpg.Connection, load: Load) -> None:
            active = await c.fetchval(
                f"select count(*) from {schema}.chat_sessions where user_id = $1 and is_active",
                user,
            )
            load.max_active_seen = max(load.max_active_seen, active)
            if active > 1:
                load.violations.append(f"{active} active")

        # Deadlocks are found after deadlock_timeout (1 s by default) of waiting; shorten it where
        # this login may, so that the test finds them sooner.
        settings = None
        if await conn.fetchval("select has_parameter_privilege('deadlock_timeout', 'SET')"):
            settings = {"deadlock_timeout": "50ms"}
        started = time.monotonic()
        load = await run_load(
            database_url,
            user,
            plan_mix(schema, user),
            watch,
            PLAN_DURATION,
            server_settings=settings,
        )
        elapsed = time.monotonic() - started
        final_active = await conn.fetchval(
            f"select count(*) from {schema}.chat_sessions where user_id = $1 and is_active", user
        )
        calls = sum(load.ok.values()) + load.deadlocks + len(load.unexpected)
        report = (
            f"plan design in {elapsed:.1f}s: {calls} calls, {load.deadlocks} deadlocks (40P01), "
            f"{load.polls} polls of which {len(load.violations)} saw >1 active "
            f"(max {load.max_active_seen}), {final_active} active at the end, "
            f"other errors {Counter(s for _, s, _ in load.unexpected)}"
        )
        print("\n" + report)
        if load.deadlocks == 0 and load.max_active_seen <= 1 and final_active <= 1:
            pytest.skip(f"could not reproduce a failure of the plan's design: {report}")
        assert load.deadlocks > 0 or load.max_active_seen > 1 or final_active > 1, report
    finally:
        await conn.execute(f"drop schema {schema} cascade")


# -- two transactions, interleaved on purpose ------------------------------------------------


async def wait_until_blocked(watcher: asyncpg.Connection, pid: int) -> None:
    """Waits (up to 5 s) until backend `pid` waits for a lock."""
    for _ in range(500):
        if await watcher.fetchval(
            "select wait_event_type = 'Lock' from pg_stat_activity where pid = $1", pid
        ):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"backend {pid} never blocked")


async def test_one_message_id_sent_to_two_sessions_at_once_is_a_conflict(
    database_url: str, conn: asyncpg.Connection
) -> None:
    """The CS409 check must also hold when the other session's use of the id is not committed yet
    when the check runs. Here the second append waits for the first (same primary key), then its
    ON CONFLICT DO NOTHING skips the message, and it must not report success for a message it did
    not store (let alone return the other session's message as if it were in this one)."""
    user = uuid.uuid4()
    await create(conn, user, "s1")
    await create(conn, user, "s2")
    first, second = await connect(database_url), await connect(database_url)
    try:
        tx = first.transaction()
        await tx.start()
        await act_as(first, user)
        await first.fetchval(
            "select chatsessions.append_messages('s1', $1)",
            [{"id": "same", "role": "user", "content": "meant for s1"}],
        )

        async def append_to_s2() -> Any:
            async with as_user(second, user):
                return await second.fetchval(
                    "select chatsessions.append_messages('s2', $1)",
                    [{"id": "same", "role": "user", "content": "meant for s2"}],
                )

        task = asyncio.create_task(append_to_s2())
        await wait_until_blocked(conn, second.get_server_pid())
        await tx.commit()
        try:
            result = await task
        except asyncpg.PostgresError as e:
            assert e.sqlstate == "CS409", e
        else:
            stored = await conn.fetch(
                "select session_id::text, content from chatsessions.chat_messages"
                " where user_id = $1",
                user,
            )
            pytest.fail(
                "the second append reported success: it returned "
                f"{[(m['id'], m['session_id'], m['content']) for m in result['messages']]} "
                f"with s2 message_count={result['session']['message_count']}; stored: "
                f"{[tuple(r) for r in stored]}"
            )
    finally:
        await first.close()
        await second.close()


@pytest.mark.parametrize("change", ["append", "rename"])
async def test_session_timestamps_never_move_backwards(
    database_url: str, conn: asyncpg.Connection, change: str
) -> None:
    """Request 1 begins (now() is fixed at its start), request 2 appends to the session and
    commits, then request 1 appends or renames. The session's updated_at, last_activity and
    last_message_timestamp must not go back in time, and messages later in seq must not be older
    (the listing orders by last_message_timestamp, the client by seq)."""
    user = uuid.uuid4()
    await create(conn, user, "s")
    early, late = await connect(database_url), await connect(database_url)
    try:
        async with as_user(early, user):
            started = await early.fetchval("select now()")
            await asyncio.sleep(0.05)
            async with as_user(late, user):
                await late.fetchval(
                    "select chatsessions.append_messages('s', $1)",
                    [{"id": "from-late", "role": "user", "content": "2"}],
                )
            before = (await session_rows(conn, user))["s"]
            assert before["updated_at"] > started
            if change == "append":
                await early.fetchval(
                    "select chatsessions.append_messages('s', $1)",
                    [{"id": "from-early", "role": "user", "content": "1"}],
                )
            else:
                await early.fetchval("select chatsessions.update_session('s', 'renamed')")
        after = (await session_rows(conn, user))["s"]
    finally:
        await early.close()
        await late.close()
    went_back = [
        f"{column}: {before[column]} -> {after[column]}"
        for column in ("updated_at", "last_activity", "last_message_timestamp")
        if after[column] < before[column]
    ]
    messages = await conn.fetch(
        "select id::text, seq, created_at from chatsessions.chat_messages"
        " where user_id = $1 order by seq",
        user,
    )
    out_of_order = [
        f"seq {b['seq']} ({b['created_at']}) older than seq {a['seq']} ({a['created_at']})"
        for a, b in itertools.pairwise(messages)
        if b["created_at"] < a["created_at"]
    ]
    assert went_back == [] and out_of_order == [], went_back + out_of_order
