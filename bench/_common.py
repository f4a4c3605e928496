"""Shared plumbing of the benchmarks: the database to run on, the original plan's schema, acting as
a user, timing, and markdown tables.

Every benchmark runs on a database of its own: by default on an embedded PostgreSQL started in a
temporary directory (chatsessions.db.embedded), else on the server of --database-url (any
PostgreSQL 15+ where that login may create databases and roles, like TEST_DATABASE_URL for the
tests). The database is created, migrated with chatsessions.db.migrate, given the plan's schema
`plan`, and dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from chatsessions.db.migrate import migrate_url

# The original plan, reconstructed faithfully in its own schema, next to ours in the same database.
# Deviations, all of which can only flatter the plan: user_id references no auth.users table, and
# the plan's tables get no row-level security (its function is SECURITY DEFINER anyway, and its
# plain INSERTs skip the policy checks ours pay). Requests still run as `authenticated`, like ours.
PLAN_SQL = (Path(__file__).parent / "plan_design.sql").read_text().format(schema="plan")


# The same two settings the service (QUERIES["set_request_user"]) and tests/conftest.py use.
ACT_AS = (
    "select set_config('role', 'authenticated', true), set_config('request.jwt.claims', $1, true)"
)


def claims(user_id: uuid.UUID) -> str:
    return json.dumps({"sub": str(user_id), "role": "authenticated", "aud": "authenticated"})


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL"),
        help="a PostgreSQL server to create the benchmark's database on (default: an embedded "
        "PostgreSQL in a temporary directory); also read from BENCH_DATABASE_URL",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes and fewer repetitions (a smoke run)"
    )
    return parser.parse_args()


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


@asynccontextmanager
async def bench_database(server_url: str | None) -> AsyncIterator[str]:
    """A fresh migrated database with the plan's schema; yields its URL, drops it at the end."""
    if server_url is None:
        from chatsessions.db.embedded import start_embedded, stop_embedded

        with tempfile.TemporaryDirectory(prefix="chatsessions-bench-") as tmp:
            url = await asyncio.to_thread(start_embedded, Path(tmp))
            try:
                async with bench_database(url) as db:
                    yield db
            finally:
                await asyncio.to_thread(stop_embedded, Path(tmp))
        return
    name = f"chatsessions_bench_{os.getpid()}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'create database "{name}"')
    finally:
        await admin.close()
    url = _with_database(server_url, name)
    try:
        await migrate_url(url)
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(PLAN_SQL)
        finally:
            await conn.close()
        yield url
    finally:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f'drop database if exists "{name}" with (force)')
        finally:
            await admin.close()


async def connect(url: str) -> asyncpg.Connection:
    """A connection as the owner (login) role, set up like the service's pool connections."""
    conn = await asyncpg.connect(url, server_settings={"timezone": "UTC"})
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    return conn


@asynccontextmanager
async def as_user(conn: asyncpg.Connection, user_id: uuid.UUID) -> AsyncIterator[None]:
    """One committed transaction in which `conn` acts as `user_id` (like one API request)."""
    async with conn.transaction():
        await conn.execute(ACT_AS, claims(user_id))
        yield


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    """Milliseconds `fn` took (client-side wall time, round trips included)."""
    start = time.perf_counter()
    await fn()
    return (time.perf_counter() - start) * 1000.0


async def interleaved(
    cells: dict[Any, Callable[[int], Awaitable[Any]]],
    warmup: int,
    reps: int,
    *,
    cleanup: dict[Any, Callable[[int], Awaitable[Any]]] | None = None,
    seed: int = 1,
) -> dict[Any, list[float]]:
    """Times every cell `warmup + reps` times, in rounds: each round calls every cell once, in a
    new random order, so that drift and noise of the machine (and of the other cells' after-effects:
    WAL, checkpoints, autovacuum) spread evenly over all cells instead of biasing one size or
    design. Cell functions get their own call number (0, 1, ...); `cleanup[cell]`, if any, runs
    right after each call, untimed. Returns the timed samples (ms) after the warm-up rounds."""
    rng = random.Random(seed)
    keys = list(cells)
    samples: dict[Any, list[float]] = {k: [] for k in keys}
    for i in range(warmup + reps):
        rng.shuffle(keys)
        for k in keys:
            fn = cells[k]
            start = time.perf_counter()
            await fn(i)
            ms = (time.perf_counter() - start) * 1000.0
            if i >= warmup:
                samples[k].append(ms)
            if cleanup and k in cleanup:
                await cleanup[k](i)
    return samples


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def fmt_ms(ms: float) -> str:
    if ms >= 100:
        return f"{ms:,.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    return f"{ms:.2f}"


def fmt_ratio(r: float) -> str:
    return f"{r:,.0f}x" if r >= 100 else f"{r:.1f}x"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table (numbers right-aligned)."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [
        all(r[i][:1].isdigit() or r[i][:1] in "-+." for r in cells[1:]) and len(cells) > 1
        for i in range(len(headers))
    ]

    def line(row: Sequence[str]) -> str:
        return (
            "| "
            + " | ".join(
                c.rjust(w) if num else c.ljust(w)
                for c, w, num in zip(row, widths, numeric, strict=True)
            )
            + " |"
        )

    sep = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if num else ("-" * (w + 2))
            for w, num in zip(widths, numeric, strict=True)
        )
        + "|"
    )
    return "\n".join([line(cells[0]), sep, *[line(r) for r in cells[1:]]])


async def settle(conn: asyncpg.Connection, *tables: str) -> None:
    """After building fixtures: vacuum and analyze them (so that autovacuum does not start on them
    in the middle of the measurements, and the planner knows their sizes) and checkpoint (so that
    no checkpoint triggered by the fixtures' WAL lands in the measurements either)."""
    for t in tables:
        await conn.execute(f"vacuum (analyze) {t}")
    # CHECKPOINT needs superuser or pg_checkpoint: fine without it.
    with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
        await conn.execute("checkpoint")


async def server_version(conn: asyncpg.Connection) -> str:
    return str(await conn.fetchval("select current_setting('server_version')"))


def header(title: str, args: argparse.Namespace, version: str, notes: str = "") -> None:
    where = "embedded" if args.database_url is None else "server of --database-url"
    mode = "quick" if args.quick else "default"
    print(f"\n## {title}\n")
    print(f"PostgreSQL {version} ({where}), {os.cpu_count()} CPUs, {mode} run. {notes}".rstrip())
    print()


def run(main: Callable[[argparse.Namespace], Awaitable[None]], description: str) -> None:
    args = parse_args(description)
    try:
        asyncio.run(main(args))
    except KeyboardInterrupt:
        sys.exit(130)
