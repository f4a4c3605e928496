-- 0004_session_functions: every multi-row change of state, as one function call each.
--
-- All of them run with the caller's rights (SECURITY INVOKER): row-level security applies inside
-- them too, so calling one directly with a forged argument reaches nothing that is not the caller's.
-- The user always comes from auth.uid(), never from an argument.
--
-- Errors carry stable SQLSTATEs the service maps to HTTP statuses:
--   CS404  session not found (also when it belongs to someone else: the two are indistinguishable)
--   CS409  conflict (a message id already used in another session; editing a message)
--   28000  no authenticated user
--   42501  a user id argument that is not the caller's (compatibility function)

-- The caller, or an error: every function needs an authenticated user.
create function chatsessions.current_user_id() returns uuid
    language plpgsql
    stable
    set search_path = ''
as $$
declare
    uid uuid := auth.uid();
begin
    if uid is null then
        raise exception 'not authenticated' using errcode = '28000';
    end if;
    return uid;
end
$$;

-- For the service's login role only (not granted to `authenticated`): makes the rest of the calling
-- statement run as `authenticated` with the request's verified JWT claims, so that one statement
-- both identifies the caller and acts:
--     select chatsessions.update_session(...) where chatsessions.act_as_caller($1)
-- In a SELECT without FROM, the WHERE clause is a one-time filter evaluated before the select list,
-- and both settings are local to the statement's transaction: a switch is one round trip, with no
-- BEGIN / COMMIT around it. No SET clause on purpose: a function with one restores, on exit, every
-- setting it changed.
create function chatsessions.act_as_caller(claims text) returns boolean
    language plpgsql
as $$
begin
    perform pg_catalog.set_config('request.jwt.claims', claims, true);
    perform pg_catalog.set_config('role', 'authenticated', true);
    return true;
end
$$;

-- Creates the caller's profile on first use; returns the caller's id.
create function chatsessions.ensure_profile() returns uuid
    language plpgsql
    set search_path = ''
as $$
declare
    uid uuid := chatsessions.current_user_id();
begin
    insert into chatsessions.profiles (id) values (uid) on conflict (id) do nothing;
    return uid;
end
$$;

-- Serialises, per user, every change that decides which session is active (switch, create and
-- activate, deactivate, delete): each takes this row lock first, always in the same order, so
-- that concurrent changes queue instead of deadlocking. FOR NO KEY UPDATE does not conflict with
-- the key-share locks that inserting sessions take on the profile, so plain appends and creations
-- of other sessions do not wait for it.
create function chatsessions.lock_current_user() returns uuid
    language plpgsql
    set search_path = ''
as $$
declare
    uid uuid := chatsessions.current_user_id();
begin
    perform 1 from chatsessions.profiles p where p.id = uid for no key update;
    if not found then
        insert into chatsessions.profiles (id) values (uid) on conflict (id) do nothing;
        perform 1 from chatsessions.profiles p where p.id = uid for no key update;
    end if;
    return uid;
end
$$;

-- One of the caller's sessions, or CS404 (also when the id is someone else's: row-level security
-- hides their rows, so the two cases cannot be told apart, here or by the caller).
create function chatsessions.own_session(p_session_id text) returns chatsessions.chat_sessions
    language plpgsql
    stable
    set search_path = ''
as $$
declare
    s chatsessions.chat_sessions;
begin
    select * into s
      from chatsessions.chat_sessions c
     where c.user_id = chatsessions.current_user_id() and c.id = p_session_id;
    if not found then
        raise exception 'session not found' using errcode = 'CS404';
    end if;
    return s;
end
$$;

-- The public shape of a session: every column, plus is_active for one scope.
create function chatsessions.session_json(s chatsessions.chat_sessions, p_scope text)
    returns jsonb
    language sql
    stable
    set search_path = ''
as $$
    select (to_jsonb(s) - 'ordered_at') || jsonb_build_object(
        'is_active', exists (
            select 1 from chatsessions.active_sessions a
             where a.user_id = s.user_id and a.scope = p_scope and a.session_id = s.id))
$$;

-- The public shape of a message (its user_id is the caller's and says nothing new).
create function chatsessions.message_json(m chatsessions.chat_messages)
    returns jsonb
    language sql
    stable  -- to_jsonb of a timestamptz depends on the TimeZone setting
    set search_path = ''
as $$
    select to_jsonb(m) - 'user_id'
$$;

-- Makes a session the active one of its user in a scope, atomically and idempotently: the other
-- sessions of that scope are inactive by construction (one pointer row per user and scope). Writes
-- the pointer only when it changes; touches no session row, so no timestamp moves. Returns the
-- activated session.
create function chatsessions.activate_session(p_session_id text, p_scope text default 'account')
    returns jsonb
    language plpgsql
    set search_path = ''
as $$
declare
    uid uuid := chatsessions.lock_current_user();
    s chatsessions.chat_sessions;
begin
    s := chatsessions.own_session(p_session_id);
    insert into chatsessions.active_sessions as a (user_id, scope, session_id)
    values (uid, p_scope, p_session_id)
    on conflict (user_id, scope) do update
        set session_id = excluded.session_id, activated_at = now()
        where a.session_id is distinct from excluded.session_id;
    return chatsessions.session_json(s, p_scope);
end
$$;

-- Leaves no active session in the scope if this session is the active one; otherwise changes
-- nothing. Returns the session.
create function chatsessions.deactivate_session(p_session_id text, p_scope text default 'account')
    returns jsonb
    language plpgsql
    set search_path = ''
as $$
declare
    uid uuid := chatsessions.lock_current_user();
    s chatsessions.chat_sessions;
begin
    s := chatsessions.own_session(p_session_id);
    delete from chatsessions.active_sessions a
     where a.user_id = uid and a.scope = p_scope and a.session_id = p_session_id;
    return chatsessions.session_json(s, p_scope);
end
$$;

-- The API's POST /api/chat/session in one call and one transaction: an optional rename (which moves
-- updated_at only if the title really changes) and an optional switch (true) or deactivation
-- (false). Returns the session as it is afterwards.
create function chatsessions.update_session(
    p_session_id text,
    p_title text default null,
    p_is_active boolean default null,
    p_scope text default 'account'
)
    returns jsonb
    language plpgsql
    set search_path = ''
as $$
declare
    uid uuid;
begin
    if p_is_active is null then
        uid := chatsessions.current_user_id();
    else
        -- Before the rename, not only in activate_session: the rename locks the session row, and
        -- every path that takes both locks must take the profile's first (delete_session does), or
        -- a rename-and-switch and a delete could deadlock.
        uid := chatsessions.lock_current_user();
    end if;
    if p_title is not null then
        update chatsessions.chat_sessions c
           set title = p_title
         where c.user_id = uid and c.id = p_session_id and c.title is distinct from p_title;
    end if;
    if p_is_active then
        return chatsessions.activate_session(p_session_id, p_scope);
    elsif not p_is_active then
        return chatsessions.deactivate_session(p_session_id, p_scope);
    end if;
    return chatsessions.session_json(chatsessions.own_session(p_session_id), p_scope);
end
$$;

-- Creates a session (id generated when not given) and optionally makes it active. Creating an id
-- that the caller already has returns the existing session unchanged, so a retried request is
-- harmless; `created` in the result tells the two apart. New sessions are NOT active unless asked.
create function chatsessions.create_session(
    p_id text default null,
    p_title text default null,
    p_is_active boolean default false,
    p_scope text default 'account'
)
    returns jsonb
    language plpgsql
    set search_path = ''
as $$
declare
    uid uuid;
    s chatsessions.chat_sessions;
    was_created boolean;
begin
    if p_is_active then
        uid := chatsessions.lock_current_user();
    else
        uid := chatsessions.ensure_profile();
    end if;
    insert into chatsessions.chat_sessions (user_id, id, title)
    values (uid, coalesce(p_id, gen_random_uuid()::text), coalesce(p_title, 'New conversation'))
    on conflict (user_id, id) do nothing
    returning * into s;
    was_created := found;
    if not was_created then
        s := chatsessions.own_session(p_id);  -- CS404 if deleted since our insert
    end if;
    if p_is_active then
        return chatsessions.activate_session(s.id, p_scope)
            || jsonb_build_object('created', was_created);
    end if;
    return chatsessions.session_json(s, p_scope) || jsonb_build_object('created', was_created);
end
$$;

-- Deletes a session with its messages and its active pointers, in one transaction: deleting the
-- active session leaves none active.
create function chatsessions.delete_session(p_session_id text) returns void
    language plpgsql
    set search_path = ''
as $$
declare
    uid uuid := chatsessions.lock_current_user();
begin
    delete from chatsessions.chat_sessions c where c.user_id = uid and c.id = p_session_id;
    if not found then
        raise exception 'session not found' using errcode = 'CS404';
    end if;
end
$$;

-- Appends messages, in the given order, to one of the caller's sessions. Each element is an object
-- with role, content and optionally id, model, input_tokens, output_tokens, total_tokens (default:
-- input + output), error_message, metadata. A message id the caller already used in this session
-- is not inserted again (a retry is harmless); in another session it is a conflict. Returns
-- {"messages": [...], "session": {...}} with the messages in sequence order.
create function chatsessions.append_messages(
    p_session_id text,
    p_messages jsonb,
    p_scope text default 'account'
)
    returns jsonb
    language plpgsql
    set search_path = ''
as $$
declare
    uid uuid := chatsessions.current_user_id();
    s chatsessions.chat_sessions;
    result jsonb;
    conflicting text;
    -- The ids as a plain array: `m.id = any(ids)` is a primary-key lookup even under row-level
    -- security, where a join on `e.value ->> 'id'` (not leakproof) scans all the user's messages.
    ids text[];
    existing text[];
    bucket integer;
begin
    if jsonb_typeof(p_messages) is distinct from 'array' then
        raise exception 'messages must be a JSON array' using errcode = '22023';
    end if;
    -- Give every message its id up front, so that the result can be looked up by id whether a
    -- message was inserted now or by an earlier try of the same request.
    select coalesce(jsonb_agg(
               case when e.value ? 'id' then e.value
                    else e.value || jsonb_build_object('id', gen_random_uuid()::text) end
               order by e.ord), '[]'::jsonb)
      into p_messages
      from jsonb_array_elements(p_messages) with ordinality as e(value, ord);
    ids := array(select e.value ->> 'id' from jsonb_array_elements(p_messages) as e(value));
    -- Two batches sharing ids in opposite orders would wait on each other's index entries in
    -- batch order: a deadlock. Taking the ids' (hashed, bucketed) locks first, in one global
    -- order, turns that into a queue; the loser then gets CS409 below, as it should.
    for bucket in select distinct abs(hashtext(x) % 64) from unnest(ids) as x order by 1 loop
        perform pg_advisory_xact_lock(hashtext(uid::text), bucket);
    end loop;
    existing := array(
        select x.id::text from chatsessions.chat_messages x where x.user_id = uid and x.id = any(ids));

    select e.value ->> 'id' into conflicting
      from jsonb_array_elements(p_messages) as e(value)
     group by 1
    having count(distinct e.value) > 1
     limit 1;
    if found then
        raise exception 'message id % is used for two different messages', conflicting
            using errcode = 'CS409';
    end if;

    insert into chatsessions.chat_messages (
        user_id, session_id, id, role, content, model, input_tokens, output_tokens, total_tokens,
        error_message, metadata)
    select uid, p_session_id, i.id, i.role, i.content, i.model,
           coalesce(i.input_tokens, 0), coalesce(i.output_tokens, 0),
           coalesce(i.total_tokens, coalesce(i.input_tokens, 0) + coalesce(i.output_tokens, 0)),
           i.error_message, coalesce(i.metadata, '{}'::jsonb)
      from jsonb_array_elements(p_messages) with ordinality as e(value, ord)
     cross join lateral jsonb_to_record(e.value) as i(
               id text, role text, content text, model text, input_tokens integer,
               output_tokens integer, total_tokens integer, error_message text, metadata jsonb)
     where i.id <> all(existing)
     order by e.ord
    on conflict (user_id, id) do nothing;

    -- Checked after the insert, not before: this statement's snapshot also sees an id that a
    -- concurrent request used (and committed) while ours waited on it in the insert above.
    select m.id into conflicting
      from chatsessions.chat_messages m
     where m.user_id = uid and m.id = any(ids) and m.session_id <> p_session_id
     limit 1;
    if found then
        raise exception 'message id % is already used in another session', conflicting
            using errcode = 'CS409';
    end if;

    s := chatsessions.own_session(p_session_id);
    select coalesce(jsonb_agg(chatsessions.message_json(m) order by m.seq), '[]'::jsonb)
      into result
      from chatsessions.chat_messages m
     where m.user_id = uid and m.id = any(ids);
    return jsonb_build_object('messages', result, 'session', chatsessions.session_json(s, p_scope));
end
$$;

-- The plan's function as it should have been: the caller from auth.uid(), the account scope,
-- returning the activated session. (No two-text-argument form: with untyped literals it would be
-- chosen over the compatibility form below and silently read a user id as a session id.)
create function chatsessions.set_active_session(target_session_id text)
    returns jsonb
    language sql
    set search_path = ''
as $$
    select chatsessions.activate_session(target_session_id, 'account')
$$;

-- Compatibility with the original plan's signature. Unlike the plan's version it runs with the
-- caller's rights and refuses any user id but the caller's own; it returns false when the session
-- does not exist (or is not the caller's), true once it is active.
create function chatsessions.set_active_session(target_user_id uuid, target_session_id text)
    returns boolean
    language plpgsql
    set search_path = ''
as $$
begin
    if target_user_id is distinct from chatsessions.current_user_id() then
        raise exception 'target_user_id must be the caller''s own user id'
            using errcode = '42501';
    end if;
    perform chatsessions.activate_session(target_session_id, 'account');
    return true;
exception
    when sqlstate 'CS404' then
        return false;
end
$$;

insert into chatsessions.schema_migrations (version, name) values ('0004', 'session_functions')
    on conflict (version) do nothing;
