"""Applies sql/migrations/*.sql in order, each in its own transaction, under an advisory lock so
that servers starting together queue instead of colliding.

The files are plain SQL, runnable by hand in order (psql, a hosted SQL editor). Each records itself
in chatsessions.schema_migrations on its last line, so a database built by hand is known to be up
to date; this runner also stores each file's checksum, to warn when an applied file has changed.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)

# An arbitrary constant, the same for every chatsessions server: the key of the migration lock.
MIGRATION_LOCK_KEY = 0x63686174  # "chat"

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    folder = resources.files("chatsessions").joinpath("sql/migrations")
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(match[1], match[2], entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version: {versions}")
    return found


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Applies pending migrations; returns the versions applied now."""
    applied_now: list[str] = []
    await conn.execute("select pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        done: dict[str, str | None] = {}
        if await conn.fetchval("select to_regclass('chatsessions.schema_migrations')"):
            rows = await conn.fetch("select version, checksum from chatsessions.schema_migrations")
            done = {r["version"]: r["checksum"] for r in rows}
        for m in available_migrations():
            if m.version in done:
                if done[m.version] not in (None, m.checksum):
                    log.warning("migration %s_%s changed since it was applied", m.version, m.name)
                continue
            log.info("applying migration %s_%s", m.version, m.name)
            async with conn.transaction():
                await conn.execute(m.sql)  # records itself; we add the checksum
                await conn.execute(
                    "insert into chatsessions.schema_migrations (version, name, checksum)"
                    " values ($1, $2, $3)"
                    " on conflict (version) do update set checksum = excluded.checksum",
                    m.version,
                    m.name,
                    m.checksum,
                )
            applied_now.append(m.version)
    finally:
        await conn.execute("select pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    return applied_now


async def migrate_url(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


def latest_version() -> str:
    return available_migrations()[-1].version
