-- 0003_triggers: timestamps that move only for meaningful changes, message order assigned by the
-- database, and session statistics kept exact in the same transaction at a cost that does not grow
-- with the length of the session.

-- updated_at / last_activity move when the title changes or messages arrive, and for nothing else:
-- not for a no-op update, not for anything a client might try to write into them. (Switching the
-- active session does not update chat_sessions at all: see active_sessions.)
create function chatsessions.update_session_timestamp() returns trigger
    language plpgsql
    set search_path = ''
as $$
begin
    new.created_at := old.created_at;
    if new.title is distinct from old.title
        or new.message_count is distinct from old.message_count
        or new.last_message_timestamp is distinct from old.last_message_timestamp
    then
        -- now() is when the transaction began; one that began earlier but got the row lock later
        -- must not move the clock back.
        new.updated_at := greatest(now(), old.updated_at, new.last_message_timestamp);
        new.last_activity := greatest(now(), old.last_activity, new.last_message_timestamp);
    else
        new.updated_at := old.updated_at;
        new.last_activity := old.last_activity;
    end if;
    return new;
end
$$;

create trigger on_session_updated
    before update on chatsessions.chat_sessions
    for each row execute function chatsessions.update_session_timestamp();

-- Every message gets the next sequence number of its session and the server's clock, whatever the
-- client sent. The session row lock serialises appends to one session (so two appenders cannot
-- take the same number) and makes an append wait for, then fail on, a concurrent deletion. Rows
-- inserted earlier by the same statement are visible here, so a batch numbers itself in order.
-- Runs with the caller's rights: under row-level security it can only find the caller's sessions.
create function chatsessions.assign_message_seq() returns trigger
    language plpgsql
    set search_path = ''
as $$
declare
    last_seq bigint;
    last_at timestamptz;
begin
    perform 1
       from chatsessions.chat_sessions s
      where s.user_id = new.user_id and s.id = new.session_id
        for no key update;
    if not found then
        raise exception 'session not found' using errcode = 'CS404';
    end if;
    select m.seq, m.created_at
      into last_seq, last_at
      from chatsessions.chat_messages m
     where m.user_id = new.user_id and m.session_id = new.session_id
     order by m.seq desc
     limit 1;
    new.seq := coalesce(last_seq, 0) + 1;
    -- Never earlier than the message before it, even if this transaction began before that one.
    new.created_at := greatest(now(), last_at);
    return new;
end
$$;

create trigger on_message_inserting
    before insert on chatsessions.chat_messages
    for each row execute function chatsessions.assign_message_seq();

-- Statistics are applied as deltas, once per statement, from the rows the statement actually
-- inserted (transition table), never by re-aggregating the session: appending to a session of
-- 10,000 messages costs what appending to an empty one does. Messages with an error_message are
-- failed generations and do not count, as in the original app.
-- SECURITY DEFINER because the statistics columns are not writable by users.
create function chatsessions.update_session_stats_on_insert() returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
begin
    update chatsessions.chat_sessions s
       set message_count = s.message_count + d.n,
           total_tokens = s.total_tokens + d.tokens,
           last_model = coalesce(d.last_model, s.last_model),
           last_message_preview = d.preview,
           last_message_timestamp = d.last_at
      from (
            select m.user_id,
                   m.session_id,
                   count(*) as n,
                   sum(m.total_tokens) as tokens,
                   (array_agg(m.model order by m.seq desc)
                        filter (where m.model is not null))[1] as last_model,
                   (array_agg(left(m.content, 280) order by m.seq desc))[1] as preview,
                   max(m.created_at) as last_at
              from new_messages m
             where m.error_message is null
             group by m.user_id, m.session_id
           ) d
     where s.user_id = d.user_id and s.id = d.session_id;
    return null;
end
$$;

create trigger on_messages_inserted
    after insert on chatsessions.chat_messages
    referencing new table as new_messages
    for each statement execute function chatsessions.update_session_stats_on_insert();

-- Deleting messages (an operator's cleanup; the API deletes whole sessions) subtracts what went and
-- looks up the new last message through the (user_id, session_id, seq) index. When the session
-- itself is being deleted, its row is already gone and nothing is updated, so deleting a session of
-- any length stays linear.
create function chatsessions.update_session_stats_on_delete() returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
begin
    update chatsessions.chat_sessions s
       set message_count = s.message_count - d.n,
           total_tokens = s.total_tokens - d.tokens,
           last_model = (
                select m.model from chatsessions.chat_messages m
                 where m.user_id = s.user_id and m.session_id = s.id
                   and m.error_message is null and m.model is not null
                 order by m.seq desc limit 1),
           last_message_preview = last.preview,
           last_message_timestamp = last.created_at
      from (
            select o.user_id, o.session_id,
                   count(*) filter (where o.error_message is null) as n,
                   coalesce(sum(o.total_tokens) filter (where o.error_message is null), 0) as tokens
              from old_messages o
             group by o.user_id, o.session_id
           ) d
      left join lateral (
            select left(m.content, 280) as preview, m.created_at
              from chatsessions.chat_messages m
             where m.user_id = d.user_id and m.session_id = d.session_id
               and m.error_message is null
             order by m.seq desc
             limit 1
           ) last on true
     where s.user_id = d.user_id and s.id = d.session_id;
    return null;
end
$$;

create trigger on_messages_deleted
    after delete on chatsessions.chat_messages
    referencing old table as old_messages
    for each statement execute function chatsessions.update_session_stats_on_delete();

-- Messages are an append-only log: an edit would silently falsify the statistics above.
create function chatsessions.forbid_message_update() returns trigger
    language plpgsql
    set search_path = ''
as $$
begin
    raise exception 'messages cannot be changed once written; delete and append instead'
        using errcode = '0A000';
end
$$;

create trigger on_message_updating
    before update on chatsessions.chat_messages
    for each row execute function chatsessions.forbid_message_update();

insert into chatsessions.schema_migrations (version, name) values ('0003', 'triggers')
    on conflict (version) do nothing;
