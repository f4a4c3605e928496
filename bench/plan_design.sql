-- The original plan's design, reconstructed from its text, for the benchmarks and for the test
-- that shows it failing under concurrency: a boolean is_active (default true) on every session,
-- a trigger moving updated_at on any update, statistics re-aggregated over the whole session for
-- every message, and the plan's SECURITY DEFINER set_active_session, verbatim.
-- `{schema}` is replaced by the schema to build it in.
create schema {schema};

create table {schema}.chat_sessions (
    id text primary key,
    user_id uuid not null,
    title varchar(255) not null default 'New Chat',
    is_active boolean default true,
    created_at timestamptz default now(),
    updated_at timestamptz default now(),
    last_activity timestamptz default now(),
    message_count integer default 0,
    total_tokens integer default 0,
    last_model text,
    last_message_preview text,
    last_message_timestamp timestamptz
);
create index idx_chat_sessions_user_id on {schema}.chat_sessions (user_id);

create table {schema}.chat_messages (
    id text primary key,
    session_id text not null references {schema}.chat_sessions (id) on delete cascade,
    role text not null check (role in ('user', 'assistant', 'system')),
    content text not null,
    model text,
    input_tokens integer default 0,
    output_tokens integer default 0,
    total_tokens integer default 0,
    error_message text,
    created_at timestamptz default now()
);
create index idx_chat_messages_session_id on {schema}.chat_messages (session_id);

-- The plan: any update of a session moves its timestamps.
create function {schema}.update_session_timestamp() returns trigger language plpgsql as $$
begin
    new.updated_at = now();
    new.last_activity = now();
    return new;
end;
$$;
create trigger on_session_updated
    before update on {schema}.chat_sessions
    for each row execute function {schema}.update_session_timestamp();

-- The plan: every inserted, updated or deleted message re-aggregates its whole session.
create function {schema}.update_session_stats() returns trigger language plpgsql as $$
declare
    sid text;
begin
    if tg_op = 'DELETE' then
        sid := old.session_id;
    else
        sid := new.session_id;
    end if;
    update {schema}.chat_sessions set
        message_count = (select count(*) from {schema}.chat_messages
                          where session_id = sid and error_message is null),
        total_tokens = (select coalesce(sum(total_tokens), 0) from {schema}.chat_messages
                         where session_id = sid and error_message is null),
        last_model = (select model from {schema}.chat_messages
                       where session_id = sid and error_message is null
                       order by created_at desc limit 1),
        last_message_preview = (select left(content, 100) from {schema}.chat_messages
                                 where session_id = sid and error_message is null
                                 order by created_at desc limit 1),
        last_message_timestamp = (select max(created_at) from {schema}.chat_messages
                                   where session_id = sid)
    where id = sid;
    return coalesce(new, old);
end;
$$;
create trigger on_message_changed
    after insert or update or delete on {schema}.chat_messages
    for each row execute function {schema}.update_session_stats();

-- The plan's switch, verbatim.
create or replace function {schema}.set_active_session(target_user_id uuid, target_session_id text)
returns boolean as $$
begin
    if not exists (select 1 from {schema}.chat_sessions
                    where id = target_session_id and user_id = target_user_id) then
        return false;
    end if;
    update {schema}.chat_sessions set is_active = false where user_id = target_user_id;
    update {schema}.chat_sessions set is_active = true
     where id = target_session_id and user_id = target_user_id;
    return true;
end;
$$ language plpgsql security definer;

grant usage on schema {schema} to authenticated;
grant select, insert, update, delete on all tables in schema {schema} to authenticated;
grant execute on function {schema}.set_active_session(uuid, text) to authenticated;
