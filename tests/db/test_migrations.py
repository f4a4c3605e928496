"""The migrations: applied once by chatsessions.db.migrate (also by two migrators at once), and
runnable by hand, file by file, with the same result."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from chatsessions.db.migrate import available_migrations, migrate_url
from conftest import create_database, drop_database

# The schema as the catalogs describe it: everything a migration creates in `chatsessions` and
# `auth`, minus the migration bookkeeping itself.
CATALOG_QUERIES = {
    "schemas": """
        select nspname, obj_description(oid, 'pg_namespace') as comment, nspacl::text
          from pg_namespace where nspname in ('chatsessions', 'auth') order by 1
    """,
    "tables": """
        select c.relname, c.relkind, c.relrowsecurity, c.relforcerowsecurity,
               c.relacl::text, obj_description(c.oid, 'pg_class') as comment
          from pg_class c
         where c.relnamespace in ('chatsessions'::regnamespace, 'auth'::regnamespace)
           and c.relname not like 'schema_migrations%'
         order by 1
    """,
    "columns": """
        select c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod) as type,
               a.attnotnull, a.attgenerated, pg_get_expr(d.adbin, d.adrelid) as default,
               a.attacl::text
          from pg_attribute a
          join pg_class c on c.oid = a.attrelid
          left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
         where c.relnamespace = 'chatsessions'::regnamespace and c.relkind in ('r', 'p', 'v')
           and c.relname <> 'schema_migrations'
           and a.attnum > 0 and not a.attisdropped
         order by 1, 2
    """,
    "constraints": """
        select coalesce(c.relname, t.typname) as owner, k.conname, k.contype,
               pg_get_constraintdef(k.oid) as definition
          from pg_constraint k
          left join pg_class c on c.oid = k.conrelid
          left join pg_type t on t.oid = k.contypid
         where k.connamespace = 'chatsessions'::regnamespace
           and coalesce(c.relname, '') <> 'schema_migrations'
         order by 1, 2
    """,
    "indexes": """
        select tablename, indexname, indexdef from pg_indexes
         where schemaname = 'chatsessions' and tablename <> 'schema_migrations'
         order by 1, 2
    """,
    "types": """
        select t.typname, t.typtype, format_type(t.typbasetype, t.typtypmod) as base,
               obj_description(t.oid, 'pg_type') as comment
          from pg_type t
         where t.typnamespace = 'chatsessions'::regnamespace and t.typtype = 'd'
         order by 1
    """,
    "functions": """
        select p.oid::regprocedure::text as signature, pg_get_functiondef(p.oid) as definition,
               p.prosecdef, p.provolatile, p.proconfig, p.proacl::text,
               obj_description(p.oid, 'pg_proc') as comment
          from pg_proc p
         where p.pronamespace = 'chatsessions'::regnamespace
            or p.oid = 'auth.uid()'::regprocedure
         order by 1
    """,
    "triggers": """
        select c.relname, t.tgname, pg_get_triggerdef(t.oid) as definition, t.tgenabled
          from pg_trigger t join pg_class c on c.oid = t.tgrelid
         where c.relnamespace = 'chatsessions'::regnamespace and not t.tgisinternal
         order by 1, 2
    """,
    "policies": """
        select tablename, policyname, permissive, roles::text, cmd, qual, with_check
          from pg_policies where schemaname = 'chatsessions' order by 1, 2
    """,
    "roles": """
        select r.rolname, r.rolcanlogin, r.rolinherit,
               pg_has_role(current_user, r.oid, 'member') as member
          from pg_roles r where r.rolname in ('authenticated', 'anon') order by 1
    """,
}


async def describe(url: str) -> dict[str, list[dict[str, Any]]]:
    conn = await asyncpg.connect(url)
    try:
        return {
            name: [dict(r) for r in await conn.fetch(sql)] for name, sql in CATALOG_QUERIES.items()
        }
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_database(server_url: str) -> AsyncIterator[str]:
    url = await create_database(server_url, migrated=False)
    try:
        yield url
    finally:
        await drop_database(server_url, url)


async def recorded(url: str) -> list[tuple[str, str, str]]:
    conn = await asyncpg.connect(url)
    try:
        records = await conn.fetch(
            "select version, name, checksum from chatsessions.schema_migrations order by version"
        )
        return [(r["version"], r["name"], r["checksum"]) for r in records]
    finally:
        await conn.close()


def all_versions() -> list[str]:
    return [m.version for m in available_migrations()]


async def test_migrating_twice_applies_everything_once(server_url: str) -> None:
    migrations = available_migrations()
    assert [m.version for m in migrations] == [f"{i:04d}" for i in range(1, len(migrations) + 1)]
    async with fresh_database(server_url) as url:
        assert await migrate_url(url) == all_versions()
        schema = await describe(url)
        assert await migrate_url(url) == []
        assert await describe(url) == schema
        assert await recorded(url) == [(m.version, m.name, m.checksum) for m in migrations]


async def test_two_migrators_at_once(server_url: str) -> None:
    async with fresh_database(server_url) as url:
        first, second = await asyncio.gather(migrate_url(url), migrate_url(url))
        assert sorted([first, second]) == [[], all_versions()]
        versions = [v for v, _, _ in await recorded(url)]
        assert versions == all_versions()  # each exactly once (version is also the key)


async def test_files_applied_by_hand_build_the_same_schema(server_url: str) -> None:
    """Each file as psql or a hosted SQL editor would run it: the whole text, in order."""
    async with fresh_database(server_url) as by_hand, fresh_database(server_url) as by_tool:
        conn = await asyncpg.connect(by_hand)
        try:
            for m in available_migrations():
                await conn.execute(m.sql)
            # Each file recorded itself (no checksum: applied by hand) ...
            rows = await conn.fetch(
                "select version, checksum from chatsessions.schema_migrations order by version"
            )
            assert [(r["version"], r["checksum"]) for r in rows] == [
                (v, None) for v in all_versions()
            ]
        finally:
            await conn.close()
        # ... so the service sees an up-to-date database and applies nothing at start-up.
        assert await migrate_url(by_hand) == []
        await migrate_url(by_tool)
        manual, tool = await describe(by_hand), await describe(by_tool)
        # Not vacuous: the schema is there.
        assert len(manual["tables"]) >= 4 and len(manual["policies"]) >= 10
        assert len(manual["functions"]) >= 18 and len(manual["triggers"]) >= 5
        for name in CATALOG_QUERIES:
            assert manual[name] == tool[name], name
