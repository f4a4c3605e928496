"""Cost of listing a user's sessions, as the history grows: the newest page, a deep page, and a walk
through the whole history with the keyset cursor.

The statement is the service's own `list_sessions` (src/chatsessions/sql/queries.sql, through
chatsessions.db.queries.QUERIES), run like chatsessions.db.database runs it: on one connection
with asyncpg's statement cache (a prepared statement), asking for 51 rows for a page of 50, in a
transaction acting as the user (BEGIN, claims, query, COMMIT), timed on the client. A user has
100 / 1,000 / 10,000 / 100,000 sessions:

  newest page   no cursor;
  deep page     the cursor of the session 90% of the way down the list;
  deep, custom / deep, generic
                the same deep page with plan_cache_mode = force_custom_plan / force_generic_plan
                for the transaction: what it costs when PostgreSQL plans it for these cursor values
                / runs the prepared statement's generic plan (its own choice between the two is
                made once per connection and statement, from the statistics: see bench/README.md);
  walk          every page from the newest to the oldest, following the cursors (once per size).

Fixtures are one bulk INSERT ... SELECT generate_series per user, as the owner role (sessions need
no trigger to be correct when inserted): creation times a minute apart, two sessions per minute so
that the cursor's id tie-break is exercised, and two out of three with a last message 30 s later;
plus 20,000 other users (2,000 with --quick) with 10 sessions each. Before the measurements the
connection lists the newest page of 5 of those users, as a service's connection starts (PostgreSQL
chooses between custom and generic plans at a prepared statement's 6th execution). The four page
cells are then timed in rounds, in a new random order each round (_common.interleaved).

    .venv/bin/python bench/bench_list.py [--database-url URL] [--quick]
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg

from _common import (
    as_user,
    bench_database,
    connect,
    fmt_ms,
    fmt_ratio,
    header,
    interleaved,
    median,
    run,
    server_version,
    settle,
    table,
)
from chatsessions.db.queries import QUERIES

LIST = QUERIES["list_sessions"]
# The same statement for the forced-plan cells, as a separate prepared statement (asyncpg caches by
# text), so that they do not feed PostgreSQL's choice of plan for LIST.
LIST_FORCED = LIST + "\n-- forced plan"
PAGE = 50
# The deep page again, with the plan forced for the transaction.
FORCED = {"deep, custom": "force_custom_plan", "deep, generic": "force_generic_plan"}


async def make_user(conn: asyncpg.Connection, n: int) -> uuid.UUID:
    user = uuid.uuid4()
    async with conn.transaction():
        await conn.execute("insert into chatsessions.profiles (id) values ($1)", user)
        await conn.execute(
            """
            insert into chatsessions.chat_sessions
                   (user_id, id, title, created_at, updated_at, last_activity,
                    last_message_timestamp, message_count)
            select $1, 's' || i, 'Conversation ' || i, t, t, t,
                   case when i % 3 <> 0 then t + interval '30 seconds' end,
                   case when i % 3 <> 0 then 2 else 0 end
              from generate_series(1, $2) i,
                   lateral (select timestamptz '2024-01-01' + make_interval(mins => i / 2)) x(t)
            """,
            user,
            n,
        )
    async with as_user(conn, user):
        await conn.fetchval("select chatsessions.activate_session($1)", "s1")
    return user


def background_user(u: int) -> uuid.UUID:
    return uuid.UUID(f"00000000-0000-4000-8000-{u:012x}")


async def make_background(conn: asyncpg.Connection, users: int, sessions: int) -> None:
    """Other users, each with a few sessions, as in any multi-user table."""
    async with conn.transaction():
        await conn.execute(
            """
            insert into chatsessions.profiles (id)
            select ('00000000-0000-4000-8000-' || lpad(to_hex(u), 12, '0'))::uuid
              from generate_series(1, $1) u
            """,
            users,
        )
        await conn.execute(
            """
            insert into chatsessions.chat_sessions (user_id, id, title, created_at)
            select ('00000000-0000-4000-8000-' || lpad(to_hex(u), 12, '0'))::uuid, 's' || i,
                   'Conversation ' || i, timestamptz '2024-01-01' + make_interval(mins => i)
              from generate_series(1, $1) u, generate_series(1, $2) i
            """,
            users,
            sessions,
        )


async def page(
    conn: asyncpg.Connection, after: tuple[datetime, str] | None, statement: str = LIST
) -> tuple[list[dict[str, Any]], tuple[datetime, str] | None]:
    """One page and the cursor of the next (None at the end), as the service computes them."""
    at, sid = after if after else (None, None)
    row = await conn.fetchrow(statement, "account", at, sid, PAGE + 1)
    assert row is not None
    sessions: list[dict[str, Any]] = row["sessions"][:PAGE]
    more = len(row["sessions"]) > PAGE
    nxt = (datetime.fromisoformat(sessions[-1]["ordered_at"]), sessions[-1]["id"]) if more else None
    return sessions, nxt


async def bench(args: argparse.Namespace) -> None:
    sizes = [100, 1_000, 10_000] if args.quick else [100, 1_000, 10_000, 100_000]
    warmup, reps = (5, 30) if args.quick else (20, 200)
    async with bench_database(args.database_url) as url:
        conn = await connect(url)
        try:
            version = await server_version(conn)
            users = {n: await make_user(conn, n) for n in sizes}
            # Other users, as in any multi-user table (they also make PostgreSQL's statistics look
            # like production's: most users have few sessions).
            await make_background(conn, 2_000 if args.quick else 20_000, 10)
            await settle(conn, "chatsessions.chat_sessions", "chatsessions.active_sessions")
            deep: dict[int, tuple[datetime, str]] = {}
            for n in sizes:
                row = await conn.fetchrow(
                    """select ordered_at, id::text from chatsessions.chat_sessions
                        where user_id = $1 order by ordered_at desc, id desc
                       offset $2 limit 1""",
                    users[n],
                    n * 9 // 10,
                )
                assert row is not None
                deep[n] = (row["ordered_at"], row["id"])

            def cell(kind: str, n: int) -> Callable[[int], Awaitable[None]]:
                user = users[n]

                async def list_page(i: int) -> None:
                    async with as_user(conn, user):
                        statement = LIST
                        if kind in FORCED:
                            await conn.execute(f"set local plan_cache_mode = {FORCED[kind]}")
                            statement = LIST_FORCED
                        after = None if kind == "newest" else deep[n]
                        sessions, _ = await page(conn, after, statement)
                        left = n if kind == "newest" else n - n * 9 // 10 - 1
                        assert len(sessions) == min(PAGE, left)

                return list_page

            # A service connection's first calls are mostly newest pages of ordinary users;
            # PostgreSQL picks custom or generic plans for a prepared statement at its 6th run.
            for u in range(1, 6):
                async with as_user(conn, background_user(u)):
                    await page(conn, None)

            kinds = ("newest", "deep", *FORCED)
            samples = await interleaved(
                {(k, n): cell(k, n) for k in kinds for n in sizes}, warmup, reps
            )

            walks: dict[int, tuple[int, float]] = {}
            for n in sizes:
                seen: list[str] = []
                pages = 0
                start = time.perf_counter()
                after: tuple[datetime, str] | None = None
                while True:
                    async with as_user(conn, users[n]):
                        sessions, after = await page(conn, after)
                    pages += 1
                    seen.extend(s["id"] for s in sessions)
                    if after is None:
                        break
                walks[n] = (pages, (time.perf_counter() - start) * 1000.0)
                assert len(seen) == len(set(seen)) == n, (n, len(seen), len(set(seen)))
            plans = await conn.fetchrow(
                "select generic_plans, custom_plans from pg_prepared_statements"
                " where statement = $1",
                LIST,
            )
        finally:
            await conn.close()

    header(
        "Listing sessions (bench/bench_list.py)",
        args,
        version,
        f"Pages of {PAGE}. Median of {reps} calls per cell after {warmup} warm-up calls; one call "
        "= one transaction (BEGIN, claims, list_sessions, COMMIT), client-side wall time; the walk "
        "follows the cursor from the newest page to the oldest, once.",
    )
    rows = []
    for n in sizes:
        pages, walk_ms = walks[n]
        rows.append(
            [
                f"{n:,}",
                fmt_ms(median(samples["newest", n])),
                fmt_ms(median(samples["deep", n])),
                fmt_ms(median(samples["deep, custom", n])),
                fmt_ms(median(samples["deep, generic", n])),
                f"{pages:,}",
                fmt_ms(walk_ms),
                fmt_ms(walk_ms / pages),
            ]
        )
    print(
        table(
            [
                "sessions of the user",
                "newest page ms",
                "deep page ms",
                "deep page, custom plan ms",
                "deep page, generic plan ms",
                "walk: pages",
                "walk: total ms",
                "walk: ms/page",
            ],
            rows,
        )
    )
    lo, hi = sizes[0], sizes[-1]

    def growth(kind: str) -> str:
        return fmt_ratio(median(samples[kind, hi]) / median(samples[kind, lo]))

    walk_growth = fmt_ratio((walks[hi][1] / walks[hi][0]) / (walks[lo][1] / walks[lo][0]))
    print()
    print(
        f"Growth from {lo:,} to {hi:,} sessions (largest / smallest): newest page "
        f"{growth('newest')}, deep page {growth('deep')}, walk per page {walk_growth}; "
        f"deep page with a custom plan {growth('deep, custom')}, with a generic plan "
        f"{growth('deep, generic')}."
    )
    if plans is not None:
        print(
            "Newest page, deep page and walk: PostgreSQL's own choice of plan, which ran the "
            f"prepared list_sessions with a generic plan {plans[0]:,} times and with a custom plan "
            f"{plans[1]:,} times (pg_prepared_statements). The choice is made at the 6th execution "
            "on a connection and then sticks."
        )


if __name__ == "__main__":
    run(bench, __doc__.splitlines()[0])
