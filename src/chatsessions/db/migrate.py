"""Applies sql/migrations/*.sql in order, each in its own transaction, recorded in
chatsessions.schema_migrations, under an advisory lock so that servers starting together queue
instead of colliding. The files are plain SQL: they can also be run by hand, in order, in psql or a
hosted SQL editor (then record them by running `chatsessions migrate`, which skips what exists only
if told to with --baseline)."""

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

_BOOKKEEPING = """
create schema if not exists chatsessions;
create table if not exists chatsessions.schema_migrations (
    version text primary key,
    name text not null,
    checksum text not null,
    applied_at timestamptz not null default now()
);
revoke all on chatsessions.schema_migrations from public;
alter table chatsessions.schema_migrations enable row level security;
"""


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
        await conn.execute(_BOOKKEEPING)
        done = {
            r["version"]: r["checksum"]
            for r in await conn.fetch(
                "select version, checksum from chatsessions.schema_migrations"
            )
        }
        for m in available_migrations():
            if m.version in done:
                if done[m.version] != m.checksum:
                    log.warning("migration %s_%s changed since it was applied", m.version, m.name)
                continue
            log.info("applying migration %s_%s", m.version, m.name)
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "insert into chatsessions.schema_migrations (version, name, checksum)"
                    " values ($1, $2, $3)",
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
