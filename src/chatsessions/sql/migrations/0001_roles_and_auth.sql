-- 0001_roles_and_auth: the roles the API runs queries as, and the identity helper.
--
-- The schema follows Supabase's conventions so the same files install into a hosted Supabase
-- project unchanged: requests run as the role `authenticated`, unauthenticated callers as `anon`,
-- and the caller's identity is read through `auth.uid()` from the JWT claims the service puts in
-- `request.jwt.claims` for the current transaction. Everything here is created only where it does
-- not exist yet, because Supabase already provides all of it.

create schema if not exists chatsessions;
comment on schema chatsessions is
    'Chat sessions, their messages, and the active session per user and scope.';

-- Which migrations this database has. Every migration file records itself on its last line, so
-- that a database built by running the files by hand is known to be up to date; `chatsessions
-- migrate` also stores each file's checksum (NULL: applied by hand).
create table if not exists chatsessions.schema_migrations (
    version text not null,
    name text not null,
    checksum text,
    applied_at timestamptz not null default now(),
    constraint schema_migrations_pkey primary key (version)
);
alter table chatsessions.schema_migrations enable row level security;
revoke all on chatsessions.schema_migrations from public;

do $$
declare
    -- PostgreSQL 16 split role membership into options: SET ROLE needs the SET option, which a
    -- role does not get on the roles it creates (only ADMIN). Before 16, membership was enough.
    needed text := case when current_setting('server_version_num')::int >= 160000
                        then 'SET' else 'MEMBER' end;
    r text;
begin
    foreach r in array array['authenticated', 'anon'] loop
        begin
            if not exists (select from pg_catalog.pg_roles where rolname = r) then
                execute format('create role %I nologin noinherit', r);
            end if;
        exception when duplicate_object then
            null;  -- created meanwhile by a migration of another database on this server
        end;
        -- The service logs in as the role that runs these migrations and switches to
        -- `authenticated` for every request, so that row-level security applies to its queries.
        if not pg_catalog.pg_has_role(current_user, r, needed) then
            execute format('grant %I to %I', r, current_user);
        end if;
    end loop;
end
$$;

create schema if not exists auth;

do $$
begin
    if to_regprocedure('auth.uid()') is null then
        -- Same definition as Supabase's: the `sub` claim of the verified JWT of this request.
        create function auth.uid() returns uuid
            language sql stable
            set search_path = ''
        as $fn$
            select coalesce(
                nullif(current_setting('request.jwt.claim.sub', true), ''),
                (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
            )::uuid
        $fn$;
        comment on function auth.uid() is
            'The user id (JWT `sub`) of the current request; NULL when unauthenticated.';
    end if;
end
$$;

insert into chatsessions.schema_migrations (version, name) values ('0001', 'roles_and_auth')
    on conflict (version) do nothing;
