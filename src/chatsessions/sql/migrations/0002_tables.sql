-- 0002_tables: profiles, chat sessions, messages and the active-session pointers, each with
-- row-level security enabled in the same breath as it is created.
--
-- Every table carries user_id and every key starts with it: ids are unique per user (one user's
-- ids never collide with, block, or reveal another's) and the data can later be sharded by user.

create table chatsessions.profiles (
    id uuid not null,
    created_at timestamptz not null default now(),
    constraint profiles_pkey primary key (id)
);
comment on table chatsessions.profiles is
    'One row per user, created on the user''s first authenticated request. Its row lock serialises '
    'the changes that decide which session is active.';

-- Client-generated ids: printable, no white space at the ends, bounded.
create domain chatsessions.client_id as text
    constraint client_id_check check (
        value ~ '^[A-Za-z0-9._:~-]{1,128}$'
    );
comment on domain chatsessions.client_id is
    'A client-generated id: 1-128 characters from A-Z a-z 0-9 . _ : ~ -';

-- A scope names whose "active session" we mean: 'account' (the default: the user's account, as the
-- original plan meant it) or any name a client picks, for example one per device.
create domain chatsessions.scope_name as text
    constraint scope_name_check check (
        value ~ '^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$'
    );

create table chatsessions.chat_sessions (
    user_id uuid not null default auth.uid(),
    id chatsessions.client_id not null,
    title varchar(255) not null default 'New conversation',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    last_activity timestamptz not null default now(),
    message_count integer not null default 0,
    total_tokens bigint not null default 0,
    last_model text,
    last_message_preview text,
    last_message_timestamp timestamptz,
    -- The listing order: newest conversation first by its last message, else its creation. A
    -- rename or a switch changes neither, so neither reorders the sidebar.
    ordered_at timestamptz generated always as (coalesce(last_message_timestamp, created_at)) stored,
    constraint chat_sessions_pkey primary key (user_id, id),
    constraint chat_sessions_user_id_fkey foreign key (user_id)
        references chatsessions.profiles (id) on delete cascade,
    -- btrim() alone strips only spaces: a title of tabs or newlines is blank too.
    constraint chat_sessions_title_check check (btrim(title, E' \t\n\r\f\x0B') <> ''),
    constraint chat_sessions_message_count_check check (message_count >= 0),
    constraint chat_sessions_total_tokens_check check (total_tokens >= 0)
);
create index chat_sessions_user_id_ordered_at_idx
    on chatsessions.chat_sessions (user_id, ordered_at desc, id desc);

create table chatsessions.chat_messages (
    user_id uuid not null default auth.uid(),
    session_id chatsessions.client_id not null,
    id chatsessions.client_id not null,
    -- Assigned by the database (trigger), so the order never depends on a client's clock.
    seq bigint not null default 0,
    role text not null,
    content text not null,
    model text,
    input_tokens integer not null default 0,
    output_tokens integer not null default 0,
    total_tokens integer not null default 0,
    error_message text,
    metadata jsonb not null default '{}'::jsonb,
    created_at timestamptz not null default now(),
    constraint chat_messages_pkey primary key (user_id, id),
    constraint chat_messages_session_seq_key unique (user_id, session_id, seq),
    constraint chat_messages_session_id_fkey foreign key (user_id, session_id)
        references chatsessions.chat_sessions (user_id, id) on delete cascade,
    constraint chat_messages_role_check check (role in ('user', 'assistant', 'system')),
    constraint chat_messages_tokens_check
        check (input_tokens >= 0 and output_tokens >= 0 and total_tokens >= 0),
    constraint chat_messages_metadata_check check (jsonb_typeof(metadata) = 'object'),
    constraint chat_messages_model_check check (length(model) <= 255)
);

-- Which session is active, per user and scope: a pointer row instead of a boolean on every
-- session. "At most one active session per (user, scope)" then holds by construction (primary
-- key), a switch writes this one row and never touches a session row (so no session timestamp
-- moves), and deleting the session removes the pointer (cascade), leaving none active.
create table chatsessions.active_sessions (
    user_id uuid not null default auth.uid(),
    scope chatsessions.scope_name not null default 'account',
    session_id chatsessions.client_id not null,
    activated_at timestamptz not null default now(),
    constraint active_sessions_pkey primary key (user_id, scope),
    constraint active_sessions_session_id_fkey foreign key (user_id, session_id)
        references chatsessions.chat_sessions (user_id, id) on delete cascade
);
-- Serves the cascade when a session is deleted, and "in which scopes is this session active".
create index active_sessions_user_id_session_id_idx
    on chatsessions.active_sessions (user_id, session_id);

-- Row-level security: owner-only, on every table. `(select auth.uid())` rather than `auth.uid()`:
-- evaluated once per query (an InitPlan) instead of once per row.
alter table chatsessions.profiles enable row level security;
alter table chatsessions.chat_sessions enable row level security;
alter table chatsessions.chat_messages enable row level security;
alter table chatsessions.active_sessions enable row level security;

-- A user sees and creates only their own profile; the row lock taken by the session functions
-- needs UPDATE rights, hence the update policy (no column of it is granted for writing).
create policy "Users can see their own profile" on chatsessions.profiles
    for select to authenticated using (id = (select auth.uid()));
create policy "Users can create their own profile" on chatsessions.profiles
    for insert to authenticated with check (id = (select auth.uid()));
create policy "Users can lock their own profile" on chatsessions.profiles
    for update to authenticated using (id = (select auth.uid())) with check (id = (select auth.uid()));

create policy "Users can see their own sessions" on chatsessions.chat_sessions
    for select to authenticated using (user_id = (select auth.uid()));
create policy "Users can create their own sessions" on chatsessions.chat_sessions
    for insert to authenticated with check (user_id = (select auth.uid()));
create policy "Users can rename their own sessions" on chatsessions.chat_sessions
    for update to authenticated using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
create policy "Users can delete their own sessions" on chatsessions.chat_sessions
    for delete to authenticated using (user_id = (select auth.uid()));

create policy "Users can see their own messages" on chatsessions.chat_messages
    for select to authenticated using (user_id = (select auth.uid()));
create policy "Users can add messages to their own sessions" on chatsessions.chat_messages
    for insert to authenticated with check (user_id = (select auth.uid()));

create policy "Users can see their own active sessions" on chatsessions.active_sessions
    for select to authenticated using (user_id = (select auth.uid()));
create policy "Users can choose their own active sessions" on chatsessions.active_sessions
    for insert to authenticated with check (user_id = (select auth.uid()));
create policy "Users can change their own active sessions" on chatsessions.active_sessions
    for update to authenticated using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
create policy "Users can clear their own active sessions" on chatsessions.active_sessions
    for delete to authenticated using (user_id = (select auth.uid()));

insert into chatsessions.schema_migrations (version, name) values ('0002', 'tables')
    on conflict (version) do nothing;
