"""Cost of appending one message, as the session grows; and of deleting a long session.

Append, one message per call as a user sends them, to a session that already holds 10 / 100 /
1,000 / 10,000 messages:
  ours:   `select chatsessions.append_messages($1, '[{"id": ..., "role": "user", "content": ...}]')`
          in a transaction acting as the user (seq by a row trigger, statistics applied as deltas by
          a statement trigger with a transition table);
  plan's: a plain INSERT into plan.chat_messages, whose row trigger re-aggregates the whole session
          (count, sum, last model, last preview, max(created_at)) and so moves its timestamps.
Each call is one transaction shaped like an API request (BEGIN, claims, call, COMMIT), timed on the
client. The appended message is deleted again right after each call (untimed, as the owner), so
every call appends to a session of exactly the stated length. All (design, size) cells are timed in
rounds, in a new random order each round (_common.interleaved).

Delete: a session of 10,000 messages (and 1,000, for scale), ours by chatsessions.delete_session as
the user, the plan's by DELETE FROM plan.chat_sessions (the cascade fires its per-row trigger for
every message). A fresh session per run; the median of a few runs.

Fixtures: our messages go in through chatsessions.append_messages itself, as the user, in batches
of 1,000 built in SQL (so seq, created_at and the statistics come from our own triggers, and are
correct by construction). The plan's messages are one bulk INSERT ... SELECT generate_series with
its re-aggregating trigger disabled for that statement (otherwise building 10,000 messages costs
10,000 re-aggregations), followed by one run of the trigger's own UPDATE, which leaves exactly the
statistics the trigger would have left. Both are checked at the end.

    .venv/bin/python bench/bench_append.py [--database-url URL] [--quick]
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Awaitable, Callable

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
    timed,
)

CONTENT = (
    "Could you explain how PostgreSQL decides between a generic and a custom plan for a prepared "
    "statement, and when I should care? I have a query with a keyset cursor that is sometimes "
    "null and I am seeing odd timings on deep pages of a long list."
)

TABLES = (
    "chatsessions.chat_sessions",
    "chatsessions.chat_messages",
    "plan.chat_sessions",
    "plan.chat_messages",
)

OURS_APPEND = "select chatsessions.append_messages($1, $2)"
PLAN_APPEND = (
    "insert into plan.chat_messages (id, session_id, role, content) values ($1, $2, 'user', $3)"
)

# Messages $2..$3 of a conversation: user and assistant in turn, the assistant's with model and
# tokens, as one append_messages batch.
OURS_FIXTURE_BATCH = """
select count(*) from jsonb_array_elements((
    select chatsessions.append_messages($1, jsonb_agg(jsonb_build_object(
               'id', $1 || '-m' || k,
               'role', case when k % 2 = 1 then 'user' else 'assistant' end,
               'content', $4 || ' #' || k,
               'model', case when k % 2 = 0 then 'gpt-4o-mini' end,
               'input_tokens', case when k % 2 = 0 then 60 else 0 end,
               'output_tokens', case when k % 2 = 0 then 240 else 0 end) order by k))
      from generate_series($2::int, $3::int) k) -> 'messages')
"""

PLAN_FIXTURE_MESSAGES = """
insert into plan.chat_messages
       (id, session_id, role, content, model, input_tokens, output_tokens, total_tokens, created_at)
select $1 || '-m' || k, $1,
       case when k % 2 = 1 then 'user' else 'assistant' end,
       $3 || ' #' || k,
       case when k % 2 = 0 then 'gpt-4o-mini' end,
       case when k % 2 = 0 then 60 else 0 end,
       case when k % 2 = 0 then 240 else 0 end,
       case when k % 2 = 0 then 300 else 0 end,
       now() - make_interval(secs => $2 - k + 1)
  from generate_series(1, $2::int) k
"""

# The body of the plan's trigger (see _common.PLAN_SQL), for one session.
PLAN_REAGGREGATE = """
update plan.chat_sessions set
    message_count = (select count(*) from plan.chat_messages
                      where session_id = $1 and error_message is null),
    total_tokens = (select coalesce(sum(total_tokens), 0) from plan.chat_messages
                     where session_id = $1 and error_message is null),
    last_model = (select model from plan.chat_messages
                   where session_id = $1 and error_message is null
                   order by created_at desc limit 1),
    last_message_preview = (select left(content, 100) from plan.chat_messages
                             where session_id = $1 and error_message is null
                             order by created_at desc limit 1),
    last_message_timestamp = (select max(created_at) from plan.chat_messages
                               where session_id = $1)
where id = $1
"""


async def ours_session(conn: asyncpg.Connection, user: uuid.UUID, sid: str, n: int) -> None:
    """Our session `sid` of `user` with n messages (the profile must exist)."""
    await conn.execute(
        "insert into chatsessions.chat_sessions (user_id, id, title) values ($1, $2, 'Bench')",
        user,
        sid,
    )
    for start in range(1, n + 1, 1_000):
        async with as_user(conn, user):
            await conn.fetchval(OURS_FIXTURE_BATCH, sid, start, min(start + 999, n), CONTENT)


async def plan_session(conn: asyncpg.Connection, user: uuid.UUID, sid: str, n: int) -> None:
    """The plan's session `sid` of `user` with n messages and the statistics its trigger keeps."""
    async with conn.transaction():
        await conn.execute(
            "insert into plan.chat_sessions (id, user_id, title) values ($1, $2, 'Bench')",
            sid,
            user,
        )
        await conn.execute("alter table plan.chat_messages disable trigger on_message_changed")
        await conn.execute(PLAN_FIXTURE_MESSAGES, sid, n, CONTENT)
        await conn.execute("alter table plan.chat_messages enable trigger on_message_changed")
        await conn.execute(PLAN_REAGGREGATE, sid)


async def check_lengths(conn: asyncpg.Connection, user: uuid.UUID, plan_sid: str, n: int) -> None:
    """Both sessions hold n messages and say so."""
    ours = await conn.fetchrow(
        """select s.message_count,
                  (select count(*) from chatsessions.chat_messages m
                    where m.user_id = s.user_id and m.session_id = s.id) as actual
             from chatsessions.chat_sessions s where s.user_id = $1 and s.id = 'a'""",
        user,
    )
    plan = await conn.fetchrow(
        """select s.message_count,
                  (select count(*) from plan.chat_messages m where m.session_id = s.id) as actual
             from plan.chat_sessions s where s.id = $1""",
        plan_sid,
    )
    assert ours is not None and plan is not None
    assert ours["message_count"] == ours["actual"] == n, (n, dict(ours))
    assert plan["message_count"] == plan["actual"] == n, (n, dict(plan))


async def bench(args: argparse.Namespace) -> None:
    sizes = [10, 100, 1_000] if args.quick else [10, 100, 1_000, 10_000]
    warmup, reps = (5, 30) if args.quick else (20, 200)
    delete_sizes = [1_000] if args.quick else [1_000, 10_000]
    delete_runs = 3 if args.quick else 5
    async with bench_database(args.database_url) as url:
        conn = await connect(url)
        try:
            version = await server_version(conn)

            # Appends.
            users: dict[int, uuid.UUID] = {}
            for n in sizes:
                user = users[n] = uuid.uuid4()
                await conn.execute("insert into chatsessions.profiles (id) values ($1)", user)
                await ours_session(conn, user, "a", n)
                await plan_session(conn, user, f"{user}-a", n)
            await settle(conn, *TABLES)

            def cell(design: str, n: int) -> Callable[[int], Awaitable[None]]:
                user = users[n]

                async def append(i: int) -> None:
                    async with as_user(conn, user):
                        if design == "ours":
                            message = {"id": f"new-{i}", "role": "user", "content": CONTENT}
                            await conn.fetchval(OURS_APPEND, "a", [message])
                        else:
                            await conn.execute(PLAN_APPEND, f"{user}-new-{i}", f"{user}-a", CONTENT)

                return append

            def undo(design: str, n: int) -> Callable[[int], Awaitable[None]]:
                user = users[n]

                async def delete(i: int) -> None:
                    if design == "ours":
                        await conn.execute(
                            "delete from chatsessions.chat_messages where user_id = $1 and id = $2",
                            user,
                            f"new-{i}",
                        )
                    else:
                        await conn.execute(
                            "delete from plan.chat_messages where id = $1", f"{user}-new-{i}"
                        )

                return delete

            keys = [(d, n) for d in ("ours", "plan") for n in sizes]
            samples = await interleaved(
                {k: cell(*k) for k in keys},
                warmup,
                reps,
                cleanup={k: undo(*k) for k in keys},
            )
            for n in sizes:
                await check_lengths(conn, users[n], f"{users[n]}-a", n)

            # Deletes: a fresh session per run, the two designs in turn.
            deletes: dict[tuple[str, int], list[float]] = {}
            for n in delete_sizes:
                user = uuid.uuid4()
                await conn.execute("insert into chatsessions.profiles (id) values ($1)", user)
                for r in range(delete_runs):
                    await ours_session(conn, user, f"d{r}", n)
                    await plan_session(conn, user, f"{user}-d{r}", n)
                    await settle(conn, *TABLES)

                    async def delete_ours(user: uuid.UUID = user, r: int = r) -> None:
                        async with as_user(conn, user):
                            await conn.fetchval("select chatsessions.delete_session($1)", f"d{r}")

                    async def delete_plan(user: uuid.UUID = user, r: int = r) -> None:
                        async with as_user(conn, user):
                            await conn.execute(
                                "delete from plan.chat_sessions where id = $1", f"{user}-d{r}"
                            )

                    order = [("ours", delete_ours), ("plan", delete_plan)]
                    for design, fn in order if r % 2 == 0 else order[::-1]:
                        deletes.setdefault((design, n), []).append(await timed(fn))
                left = await conn.fetchval(
                    """select (select count(*) from chatsessions.chat_messages where user_id = $1)
                            + (select count(*) from plan.chat_messages
                                where session_id like $1::text || '-%')""",
                    user,
                )
                assert left == 0, left
        finally:
            await conn.close()

    header(
        "Appending a message (bench/bench_append.py)",
        args,
        version,
        f"Median of {reps} appends per cell after {warmup} warm-up appends; one append = one "
        "transaction (BEGIN, claims, call, COMMIT), client-side wall time.",
    )
    rows = []
    for n in sizes:
        ours_ms, plan_ms = median(samples["ours", n]), median(samples["plan", n])
        rows.append([f"{n:,}", fmt_ms(ours_ms), fmt_ms(plan_ms), fmt_ratio(plan_ms / ours_ms)])
    print(
        table(
            ["messages already in the session", "ours ms/append", "plan ms/append", "plan / ours"],
            rows,
        )
    )
    lo, hi = sizes[0], sizes[-1]
    print()
    print(
        f"Growth from {lo:,} to {hi:,} messages (largest / smallest): "
        f"ours {fmt_ratio(median(samples['ours', hi]) / median(samples['ours', lo]))}, "
        f"plan {fmt_ratio(median(samples['plan', hi]) / median(samples['plan', lo]))}."
    )
    print()
    print(f"Deleting a whole session (median of {delete_runs} runs, a fresh session each):")
    print()
    rows = []
    for n in delete_sizes:
        ours_ms, plan_ms = median(deletes["ours", n]), median(deletes["plan", n])
        rows.append([f"{n:,}", fmt_ms(ours_ms), fmt_ms(plan_ms), fmt_ratio(plan_ms / ours_ms)])
    print(
        table(["messages in the session", "ours ms/delete", "plan ms/delete", "plan / ours"], rows)
    )


if __name__ == "__main__":
    run(bench, __doc__.splitlines()[0])
