"""Cost of switching the active session, as the number of sessions per user grows.

Ours: `select chatsessions.activate_session($1)` in a transaction acting as the user (one pointer
row per user and scope). The plan's: `select plan.set_active_session($1, $2)` (an is_active flag on
every session: the switch updates every session row of the user, and its BEFORE UPDATE trigger
moves updated_at on each of them). Every call really switches: each design alternates between two
sessions of its user. Each switch is one transaction shaped like an API request (BEGIN, the user's
claims, the call, COMMIT) timed on the client. All (design, size) cells are timed in rounds, in a
new random order each round (_common.interleaved), so machine noise hits all of them alike.

Fixtures are bulk INSERT ... SELECT generate_series as the owner role (sessions need no trigger to
be correct when inserted), with timestamps in the past so that any timestamp a switch moves shows.
After the timed calls, one more switch per design is inspected in its own transaction: the rows it
wrote (pg_stat_xact_user_tables) and the session rows whose updated_at it changed.

    .venv/bin/python bench/bench_switch.py [--database-url URL] [--quick]
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from _common import (
    as_user,
    bench_database,
    claims,
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

OURS_CALL = "select chatsessions.activate_session($1)"
# The same switch as the service sends it: one statement that also sets the caller (one round trip).
SERVICE_CALL = QUERIES["update_session"]
PLAN_CALL = "select plan.set_active_session($1, $2)"

# Rows written (inserted, updated or deleted) in a schema by the current transaction so far.
ROWS_WRITTEN = """
select coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint
  from pg_stat_xact_user_tables where schemaname = $1
"""


async def make_fixtures(conn: asyncpg.Connection, n: int) -> tuple[uuid.UUID, uuid.UUID]:
    """One user with n sessions in each design; session 1 active. Returns (ours, plan's) users."""
    ours, plans = uuid.uuid4(), uuid.uuid4()
    async with conn.transaction():
        await conn.execute("insert into chatsessions.profiles (id) values ($1)", ours)
        await conn.execute(
            """
            insert into chatsessions.chat_sessions
                   (user_id, id, title, created_at, updated_at, last_activity)
            select $1, 's' || i, 'Conversation ' || i, t, t, t
              from generate_series(1, $2) i,
                   lateral (select timestamptz '2024-01-01' + make_interval(mins => i)) as x(t)
            """,
            ours,
            n,
        )
        await conn.execute(
            """
            insert into plan.chat_sessions
                   (id, user_id, title, is_active, created_at, updated_at, last_activity)
            select $1::uuid::text || '-' || i, $1, 'Conversation ' || i, i = 1, t, t, t
              from generate_series(1, $2) i,
                   lateral (select timestamptz '2024-01-01' + make_interval(mins => i)) as x(t)
            """,
            plans,
            n,
        )
    async with as_user(conn, ours):
        await conn.fetchval(OURS_CALL, "s1")
    return ours, plans


async def inspect_one_switch(
    conn: asyncpg.Connection, ours: uuid.UUID, plans: uuid.UUID, n: int
) -> dict[str, tuple[int, int]]:
    """(rows written, sessions whose updated_at moved) by one more switch, per design."""
    before_ours = dict(
        await conn.fetch(
            "select id, updated_at from chatsessions.chat_sessions where user_id = $1", ours
        )
    )
    before_plan = dict(
        await conn.fetch("select id, updated_at from plan.chat_sessions where user_id = $1", plans)
    )
    # Switch to whichever of sessions 1 and 2 is not active now (in both designs).
    active = await conn.fetchval(
        "select session_id from chatsessions.active_sessions where user_id = $1", ours
    )
    target = 1 if active == "s2" else 2
    # pg_stat_xact_user_tables also holds counts of earlier transactions of this connection that
    # are not flushed yet, hence the difference within one transaction.
    async with as_user(conn, ours):
        start = await conn.fetchval(ROWS_WRITTEN, "chatsessions")
        await conn.fetchval(OURS_CALL, f"s{target}")
        written_ours = await conn.fetchval(ROWS_WRITTEN, "chatsessions") - start
    async with as_user(conn, ours):
        start = await conn.fetchval(ROWS_WRITTEN, "plan")
        await conn.fetchval(PLAN_CALL, plans, f"{plans}-{target}")
        written_plan = await conn.fetchval(ROWS_WRITTEN, "plan") - start
    after_ours = await conn.fetch(
        "select id, updated_at from chatsessions.chat_sessions where user_id = $1", ours
    )
    after_plan = await conn.fetch(
        "select id, updated_at from plan.chat_sessions where user_id = $1", plans
    )
    moved_ours = sum(1 for r in after_ours if before_ours[r["id"]] != r["updated_at"])
    moved_plan = sum(1 for r in after_plan if before_plan[r["id"]] != r["updated_at"])
    assert len(after_ours) == len(after_plan) == n
    # Check that both really switched.
    active_ours = await conn.fetchval(
        "select session_id from chatsessions.active_sessions where user_id = $1", ours
    )
    active_plan = await conn.fetch(
        "select id from plan.chat_sessions where user_id = $1 and is_active", plans
    )
    assert active_ours == f"s{target}"
    assert [r["id"] for r in active_plan] == [f"{plans}-{target}"]
    return {"ours": (written_ours, moved_ours), "plan": (written_plan, moved_plan)}


async def bench(args: argparse.Namespace) -> None:
    sizes = [10, 100, 1_000] if args.quick else [10, 100, 1_000, 10_000]
    warmup, reps = (5, 30) if args.quick else (20, 200)
    async with bench_database(args.database_url) as url:
        conn = await connect(url)
        try:
            version = await server_version(conn)
            users = {n: await make_fixtures(conn, n) for n in sizes}
            await settle(conn, "chatsessions.chat_sessions", "plan.chat_sessions")

            def cell(design: str, n: int) -> Callable[[int], Awaitable[None]]:
                ours, plans = users[n]

                async def switch(i: int) -> None:
                    target = 2 if i % 2 == 0 else 1  # session 1 is active before the first call
                    if design == "service":
                        await conn.fetchval(
                            SERVICE_CALL, claims(ours), f"s{target}", None, True, "account"
                        )
                        return
                    async with as_user(conn, ours):
                        if design == "ours":
                            await conn.fetchval(OURS_CALL, f"s{target}")
                        else:
                            await conn.fetchval(PLAN_CALL, plans, f"{plans}-{target}")

                return switch

            designs = ("ours", "service", "plan")
            cells = {(d, n): cell(d, n) for d in designs for n in sizes}
            samples = await interleaved(cells, warmup, reps)
            results = []
            for n in sizes:
                touched = await inspect_one_switch(conn, *users[n], n)
                results.append(
                    (
                        n,
                        median(samples["ours", n]),
                        median(samples["plan", n]),
                        touched,
                        median(samples["service", n]),
                    )
                )
        finally:
            await conn.close()

    header(
        "Switching the active session (bench/bench_switch.py)",
        args,
        version,
        f"Median of {reps} switches per cell after {warmup} warm-up switches; "
        "one switch = one transaction (BEGIN, claims, call, COMMIT), client-side wall time; "
        "'ours, 1 round trip' = the same switch as the service sends it, one statement that "
        "also sets the caller.",
    )
    rows = []
    for n, ours_ms, plan_ms, touched, service_ms in results:
        rows.append(
            [
                f"{n:,}",
                fmt_ms(ours_ms),
                fmt_ms(service_ms),
                fmt_ms(plan_ms),
                fmt_ratio(plan_ms / ours_ms),
                f"{touched['ours'][0]:,}",
                f"{touched['plan'][0]:,}",
                f"{touched['ours'][1]:,}",
                f"{touched['plan'][1]:,}",
            ]
        )
    print(
        table(
            [
                "sessions per user",
                "ours ms/switch",
                "ours, 1 round trip ms",
                "plan ms/switch",
                "plan / ours",
                "ours rows written",
                "plan rows written",
                "ours updated_at moved",
                "plan updated_at moved",
            ],
            rows,
        )
    )
    first, last = results[0], results[-1]
    print()
    print(
        f"Growth from {first[0]:,} to {last[0]:,} sessions per user (largest / smallest): "
        f"ours {fmt_ratio(last[1] / first[1])}, ours in 1 round trip "
        f"{fmt_ratio(last[4] / first[4])}, plan {fmt_ratio(last[2] / first[2])}."
    )
    print(
        "rows written = rows inserted/updated/deleted by one switch (pg_stat_xact_user_tables); "
        "updated_at moved = that user's session rows whose updated_at one switch changed."
    )


if __name__ == "__main__":
    run(bench, __doc__.splitlines()[0])
