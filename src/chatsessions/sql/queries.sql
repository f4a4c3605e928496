-- Every statement the service runs, named. Multi-row changes of state are database functions
-- (migrations 0004); these lines only call them or read.

-- name: set_request_user --
-- Runs the rest of the transaction as `authenticated` (so row-level security applies) with the
-- verified JWT claims that auth.uid() reads. For the reads, which are queries with a FROM clause.
select chatsessions.act_as_caller($1)

-- name: ensure_profile --
-- Creates the user's profile on their first request. $1: the verified claims (see act_as_caller).
select chatsessions.ensure_profile() where chatsessions.act_as_caller($1)

-- name: get_session --
-- One session of the caller, with is_active for scope $2.
select chatsessions.session_json(s, $2)
  from chatsessions.chat_sessions s
 where s.user_id = auth.uid() and s.id = $1

-- name: list_sessions --
-- A page of the caller's sessions, newest conversation first, after the keyset cursor ($2, $3),
-- and the active session of scope $1. Returns up to $4 sessions (the route asks for one more than
-- its page, to know whether there is a next one); each carries its ordered_at for the cursor.
with active as (
    select a.session_id
      from chatsessions.active_sessions a
     where a.user_id = auth.uid() and a.scope = $1
), page as (
    select s.*
      from chatsessions.chat_sessions s
     where s.user_id = auth.uid()
       -- One row comparison, no OR: a generic plan can use it as an index condition too. CASE, not
       -- COALESCE, which row-level security treats as possibly leaky and would not push down.
       and (s.ordered_at, s.id) < (
               case when $2::timestamptz is null then 'infinity' else $2::timestamptz end,
               case when $2::timestamptz is null then '' else $3::text end)
     order by s.ordered_at desc, s.id desc
     limit $4
)
select (select session_id from active)::text as active_session_id,
       coalesce(jsonb_agg(
           to_jsonb(p)
           || jsonb_build_object('is_active', coalesce(p.id = (select session_id from active), false))
           order by p.ordered_at desc, p.id desc), '[]'::jsonb) as sessions
  from page p

-- The writes below are each one statement, one round trip: the caller's verified claims ($1) are
-- put in place by chatsessions.act_as_caller before the function runs, in the statement's own
-- transaction.

-- name: update_session --
-- Rename and/or (de)activate, in one call (see chatsessions.update_session).
select chatsessions.update_session($2, $3, $4, $5) where chatsessions.act_as_caller($1)

-- name: create_session --
select chatsessions.create_session($2, $3, $4, $5) where chatsessions.act_as_caller($1)

-- name: delete_session --
select chatsessions.delete_session($2) where chatsessions.act_as_caller($1)

-- name: append_messages --
select chatsessions.append_messages($2, $3, $4) where chatsessions.act_as_caller($1)

-- name: list_messages --
-- Messages of one of the caller's sessions after sequence number $2, at most $3 (the route asks
-- for one more than its page). No row at all: no such session.
select coalesce((
    select jsonb_agg(chatsessions.message_json(m) order by m.seq)
      from (
            select *
              from chatsessions.chat_messages x
             where x.user_id = s.user_id and x.session_id = s.id and x.seq > $2
             order by x.seq
             limit $3
           ) m
    ), '[]'::jsonb) as messages
  from chatsessions.chat_sessions s
 where s.user_id = auth.uid() and s.id = $1

-- name: schema_version --
-- The newest applied migration, for readiness checks.
select max(version) from chatsessions.schema_migrations
