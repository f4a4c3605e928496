-- 0005_grants: who may do what, kept apart from the DDL.
--
-- Nothing is executable or readable by PUBLIC. `authenticated` (every API request, and direct SQL
-- callers such as a Supabase client) reaches its own rows only, through row-level security, and
-- may write only the columns a user owns: titles, choices of active session, new messages.
-- Statistics, sequence numbers and timestamps are written by the database alone. `anon` gets
-- nothing at all.

revoke all on schema chatsessions from public;
grant usage on schema chatsessions to authenticated;
grant usage on schema auth to authenticated;

revoke all on all tables in schema chatsessions from public;
revoke execute on all functions in schema chatsessions from public;
-- ... and for functions later migrations create (PostgreSQL grants EXECUTE to PUBLIC by default).
alter default privileges in schema chatsessions revoke execute on functions from public;

do $$
begin
    -- Only where this project created auth.uid() (Supabase manages its own grants).
    if (select pg_catalog.pg_get_userbyid(p.proowner) = current_user
          from pg_catalog.pg_proc p where p.oid = to_regprocedure('auth.uid()')) then
        revoke execute on function auth.uid() from public;
    end if;
end
$$;
grant execute on function auth.uid() to authenticated;

grant select, insert (id) on chatsessions.profiles to authenticated;
-- Row locks need UPDATE rights; the policy pins id to the caller, so this allows no real change.
grant update (id) on chatsessions.profiles to authenticated;

grant select, delete on chatsessions.chat_sessions to authenticated;
grant insert (user_id, id, title), update (title) on chatsessions.chat_sessions to authenticated;

grant select on chatsessions.chat_messages to authenticated;
grant insert (user_id, session_id, id, role, content, model, input_tokens, output_tokens,
              total_tokens, error_message, metadata)
    on chatsessions.chat_messages to authenticated;

grant select, delete on chatsessions.active_sessions to authenticated;
grant insert (user_id, scope, session_id), update (session_id, activated_at)
    on chatsessions.active_sessions to authenticated;

grant execute on function
    chatsessions.current_user_id(),
    chatsessions.ensure_profile(),
    chatsessions.lock_current_user(),
    chatsessions.own_session(text),
    chatsessions.session_json(chatsessions.chat_sessions, text),
    chatsessions.message_json(chatsessions.chat_messages),
    chatsessions.activate_session(text, text),
    chatsessions.deactivate_session(text, text),
    chatsessions.update_session(text, text, boolean, text),
    chatsessions.create_session(text, text, boolean, text),
    chatsessions.delete_session(text),
    chatsessions.append_messages(text, jsonb, text),
    chatsessions.set_active_session(text),
    chatsessions.set_active_session(uuid, text)
to authenticated;

insert into chatsessions.schema_migrations (version, name) values ('0005', 'grants')
    on conflict (version) do nothing;
