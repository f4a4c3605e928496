-- 0001_roles_and_auth: the roles the API runs queries as, and the identity helper.
--
-- The schema follows Supabase's conventions so the same files install into a hosted Supabase
-- project unchanged: requests run as the role `authenticated`, unauthenticated callers as `anon`,
-- and the caller's identity is read through `auth.uid()` from the JWT claims the service puts in
-- `request.jwt.claims` for the current transaction. Everything here is created only where it does
-- not exist yet, because Supabase already provides all of it.

do $$
begin
    if not exists (select from pg_catalog.pg_roles where rolname = 'authenticated') then
        create role authenticated nologin noinherit;
    end if;
    if not exists (select from pg_catalog.pg_roles where rolname = 'anon') then
        create role anon nologin noinherit;
    end if;
    -- The service logs in as the role that runs these migrations and switches to `authenticated`
    -- for every request (SET LOCAL ROLE), so that row-level security applies to its queries.
    if not pg_catalog.pg_has_role(current_user, 'authenticated', 'member') then
        execute format('grant authenticated to %I', current_user);
    end if;
    if not pg_catalog.pg_has_role(current_user, 'anon', 'member') then
        execute format('grant anon to %I', current_user);
    end if;
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

create schema if not exists chatsessions;
comment on schema chatsessions is 'Chat sessions, their messages, and the active session per user and scope.';
