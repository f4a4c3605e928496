// store.js: the client state of the chat app (the old app's useChatStore).
//
// No DOM access. The API (or a fetch), the storage and the timers are injected, so the
// store runs in tests with fakes. It is the one place where server state is applied:
// responses of its own requests and, through applyServerSession / applyServerRemoval,
// live updates from other devices.
//
// Switching: the screen follows the user's choice at once; the choice then travels to
// the server through one serialized channel per store (at most one request in flight;
// a newer choice replaces an older one still waiting), so the last choice wins in the
// database too and responses can never be applied out of order. A failed switch keeps
// the local choice, reports "not synced" with the reason and retries with backoff.

import { ApiError, createApi, isRetriable } from "./api.js";

export const SCOPE_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
export const isValidScope = (scope) => typeof scope === "string" && SCOPE_RE.test(scope);

const DEFAULTS = {
  pageSize: 50, // sessions per page (GET /api/chat/sessions?limit=)
  messagesPageSize: 200,
  deleteDelayMs: 5000, // the undo window before DELETE is sent
  retryBaseMs: 1000, // first retry delay; doubles up to retryMaxMs
  retryMaxMs: 30000,
  cacheMessages: 50, // messages of the open conversation kept in storage
  cachePrefix: "chatsessions:v1:state",
  // (text) => title for a conversation's first message, or null to leave titles alone.
  autoTitle: null,
  defaultTitles: ["New conversation"],
};

export function randomHex(bytes = 8, cryptoObj = globalThis.crypto) {
  const buf = new Uint8Array(bytes);
  if (cryptoObj && cryptoObj.getRandomValues) cryptoObj.getRandomValues(buf);
  else for (let i = 0; i < bytes; i++) buf[i] = Math.floor(Math.random() * 256);
  return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function newId(cryptoObj = globalThis.crypto) {
  if (cryptoObj && typeof cryptoObj.randomUUID === "function") return cryptoObj.randomUUID();
  const h = randomHex(16, cryptoObj);
  const variant = ((parseInt(h[16], 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const time = (iso) => {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isNaN(t) ? 0 : t;
};
const later = (a, b) => (time(b) > time(a) ? b : a);

// Merge a session from a response into the one held. Responses to concurrent requests can
// arrive in any order, and a server's timestamps are taken when its transaction starts, not
// when it commits, so no single timestamp orders them. Each field goes by its own rule:
// counters only grow (messages are never removed), the last message is the one with the
// latest timestamp, and the title follows the newer update.
function mergeSession(local, s) {
  const merged = { ...local, ...s };
  if (local._local) return merged;
  merged.message_count = Math.max(local.message_count || 0, s.message_count || 0);
  merged.total_tokens = Math.max(local.total_tokens || 0, s.total_tokens || 0);
  if (time(local.last_message_timestamp) > time(s.last_message_timestamp)) {
    merged.last_message_timestamp = local.last_message_timestamp;
    merged.last_message_preview = local.last_message_preview;
    merged.last_model = local.last_model;
  }
  merged.updated_at = later(local.updated_at, s.updated_at);
  merged.last_activity = later(local.last_activity, s.last_activity);
  if (time(s.updated_at) < time(local.updated_at)) merged.title = local.title;
  return merged;
}

function sortMessages(items) {
  // Confirmed messages in seq order, then the ones still on their way, in send order.
  return items.slice().sort((a, b) => {
    const as = a.seq ?? Infinity;
    const bs = b.seq ?? Infinity;
    if (as !== bs) return as - bs;
    return (a._order ?? 0) - (b._order ?? 0);
  });
}

function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {});
  return { promise, resolve, reject };
}

export function createStore(options = {}) {
  const o = { ...DEFAULTS, ...options };
  const api =
    o.api ||
    createApi({ fetch: o.fetch, getToken: o.getToken, baseUrl: o.baseUrl, timeoutMs: o.timeoutMs, timers: o.timers });
  const storage = o.storage || null;
  const timers = o.timers || {
    setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
    clearTimeout: (h) => globalThis.clearTimeout(h),
  };
  const now = o.now || (() => Date.now());
  const makeId = o.randomId || (() => newId());
  const onUnauthorized = o.onUnauthorized || (() => {});
  if (o.scope != null && !isValidScope(o.scope)) throw new Error(`invalid scope: ${o.scope}`);

  let state = {
    scope: o.scope ?? null, // null = the whole account
    conversations: [], // session objects, newest first; local-only ones carry _local: true
    currentId: null, // the conversation open on screen (the user's choice)
    serverActiveId: null, // the active session the server last confirmed for this scope
    loading: {}, // id -> true while a switch to it has not been confirmed
    messages: {}, // id -> { items, loading, loaded, error }
    itemErrors: {}, // id -> message shown on the item (e.g. a refused rename)
    sync: { status: "idle", reason: null, code: null, retryAt: null, attempt: 0 },
    lastError: null, // { message, code, op, id, at }
    notice: null, // { message, id } e.g. a conversation deleted elsewhere
    list: { status: "idle", fromCache: false, nextCursor: null, loadingMore: false, error: null, pages: 0 },
    pendingDeletes: [], // [{ id, title, expiresAt }] inside their undo window
    unauthorized: false,
  };
  const listeners = new Set();
  let destroyed = false;

  // Switch channel.
  let wanted = null; // { id, v }: the latest local choice not yet confirmed by the server
  let inflight = null; // { kind: 'switch'|'create', id, v, epoch }
  let switchVersion = 0;
  let retryTimer = null;
  let attempt = 0;
  let epoch = 0; // bumped by setScope/destroy: results of older requests are dropped
  const pendingCreates = []; // [{ id, title }] local conversations still to be created, in order
  const createdWaiters = new Map(); // id -> deferred resolved once the server has it

  // Other bookkeeping.
  let adoptOnEmpty = null; // setScope: the conversation to keep open if the new scope has none active
  let listGen = 0;
  let listFailed = false;
  let listAttempt = 0;
  let listRetryTimer = null;
  const serverTitles = new Map(); // id -> { title, at }: the title the server confirmed last (at: its updated_at)
  const renames = new Map(); // id -> { v } for the newest rename not yet answered
  const renameChains = new Map(); // id -> promise: renames are sent one at a time per conversation
  let renameSeq = 0;
  const hidden = new Map(); // id -> { conv, index, timer } deleted locally, inside the undo window
  const messageLoads = new Map(); // id -> promise of the running load
  const messageChains = new Map(); // id -> promise: sends are serialized per conversation
  let messageOrder = 0;

  // ---- state plumbing -------------------------------------------------------------------
  function emit() {
    for (const fn of Array.from(listeners)) {
      try {
        fn(state);
      } catch (err) {
        if (globalThis.console) console.error(err);
      }
    }
  }
  function set(patch) {
    state = { ...state, ...patch };
    emit();
  }
  const find = (id) => state.conversations.find((c) => c.id === id) || null;
  const indexOf = (id) => state.conversations.findIndex((c) => c.id === id);
  const isLocal = (id) => Boolean(find(id)?._local) || pendingCreates.some((p) => p.id === id);

  function replaceConversation(id, fn) {
    return state.conversations.map((c) => (c.id === id ? fn(c) : c));
  }
  // Newest first by last message, then creation (the server's order); local ones stay on top.
  const recency = (c) => time(c.last_message_timestamp) || time(c.created_at);
  function insertByRecency(conversations, conv) {
    const at = conversations.findIndex((c) => !c._local && recency(c) < recency(conv));
    const out = conversations.slice();
    out.splice(at < 0 ? out.length : at, 0, conv);
    return out;
  }
  // Answers can arrive out of order: the title with the newest updated_at is the one the
  // server holds (a rename refused later rolls back to it).
  function noteServerTitle(s) {
    const known = serverTitles.get(s.id);
    if (known && time(s.updated_at) < known.at) return;
    serverTitles.set(s.id, { title: s.title ?? null, at: time(s.updated_at) });
  }
  // The create of a local conversation still on its way, or null: then a request that needs
  // the conversation on the server goes out at once, with no await before it.
  const pendingCreate = (id) => createdWaiters.get(id)?.promise ?? null;
  function withActiveFlags(conversations, activeId) {
    return conversations.map((c) => (Boolean(c.is_active) === (c.id === activeId) ? c : { ...c, is_active: c.id === activeId }));
  }
  function omit(map, id) {
    if (!(id in map)) return map;
    const copy = { ...map };
    delete copy[id];
    return copy;
  }
  function errorInfo(err, op, id) {
    return { message: err?.message || String(err), code: err?.code || "error", op, id: id ?? null, at: now() };
  }
  function unauthorized(err) {
    if (state.unauthorized) return;
    clearRetry();
    set({ unauthorized: true, lastError: errorInfo(err, "auth") });
    onUnauthorized(err);
  }
  const is401 = (err) => err instanceof ApiError && err.status === 401;
  const is404 = (err) => err instanceof ApiError && err.status === 404;

  // ---- persistence ----------------------------------------------------------------------
  const cacheKey = () => `${o.cachePrefix}:${state.scope || "account"}`;
  function readCache() {
    if (!storage) return null;
    try {
      const raw = storage.getItem(cacheKey());
      return raw ? JSON.parse(raw) : null;
    } catch {
      return null;
    }
  }
  function persist() {
    if (!storage || destroyed) return;
    const current = state.currentId;
    const items = (current && state.messages[current]?.items) || [];
    const confirmed = items.filter((m) => m.seq != null).slice(-o.cacheMessages);
    const data = {
      savedAt: now(),
      conversations: state.conversations.slice(0, o.pageSize),
      currentId: current,
      pendingSwitch: wanted ? wanted.id : null,
      messages: current ? { [current]: confirmed } : {},
    };
    try {
      storage.setItem(cacheKey(), JSON.stringify(data));
    } catch {
      /* storage full or unavailable: the cache is only a head start */
    }
  }

  // ---- applying server state ------------------------------------------------------------
  // The single entry point for session data from the server. `authoritative` means its
  // is_active reflects the server now (a switch confirmation or a live update); answers
  // to renames or message appends may be older than a later switch, so their is_active is
  // ignored.
  function applySession(s, { authoritative = false, insert = false } = {}) {
    if (!s || !s.id) return;
    if (hidden.has(s.id)) return; // deleted locally, inside the undo window
    const local = find(s.id);
    if (!local && !insert) return;
    noteServerTitle(s);
    let conversations = state.conversations;
    if (!local) {
      conversations = insertByRecency(conversations, { ...s, is_active: Boolean(authoritative && s.is_active) });
    } else {
      const merged = mergeSession(local, s);
      delete merged._local;
      if (renames.has(s.id)) merged.title = local.title; // a newer rename is on its way
      if (!authoritative) merged.is_active = local.is_active;
      conversations = replaceConversation(s.id, () => merged);
    }
    let patch = { conversations };
    if (authoritative) {
      const channelIdle = !wanted && !inflight;
      if (s.is_active) {
        patch.serverActiveId = s.id;
        patch.conversations = withActiveFlags(conversations, s.id);
        // Another device switched (account scope): follow it unless the user has a
        // choice of their own still travelling to the server.
        if (channelIdle && state.currentId !== s.id) {
          patch.currentId = s.id;
          set(patch);
          loadMessages(s.id);
          persist();
          return;
        }
      } else if (state.serverActiveId === s.id) {
        patch.serverActiveId = null;
      }
    }
    set(patch);
    persist();
  }

  function removeLocally(id, { notice = null } = {}) {
    const conv = find(id) || hidden.get(id)?.conv || null;
    const h = hidden.get(id);
    if (h) {
      if (h.timer !== null) timers.clearTimeout(h.timer);
      hidden.delete(id);
    }
    const pi = pendingCreates.findIndex((p) => p.id === id);
    if (pi >= 0 && !(inflight && inflight.id === id)) pendingCreates.splice(pi, 1);
    serverTitles.delete(id);
    renames.delete(id);
    const patch = {
      conversations: state.conversations.filter((c) => c.id !== id),
      messages: omit(state.messages, id),
      loading: omit(state.loading, id),
      itemErrors: omit(state.itemErrors, id),
      pendingDeletes: state.pendingDeletes.filter((p) => p.id !== id),
    };
    if (state.serverActiveId === id) patch.serverActiveId = null;
    if (wanted && wanted.id === id) wanted = null;
    if (state.currentId === id) patch.currentId = null;
    if (notice && conv) {
      const title = conv.title || "Untitled conversation";
      patch.notice = { id, message: `“${title}” ${notice}` };
    }
    if (!wanted && !inflight && state.sync.status !== "error") patch.sync = synced();
    set(patch);
    persist();
  }

  // The conversation was deleted elsewhere (a 404 or a live update).
  function applyServerRemoval(id, { notice = "was deleted on another device and was removed from the list." } = {}) {
    removeLocally(id, { notice });
  }

  // ---- the switch channel ---------------------------------------------------------------
  const synced = () => ({ status: "synced", reason: null, code: null, retryAt: null, attempt: 0 });
  function clearRetry() {
    if (retryTimer !== null) timers.clearTimeout(retryTimer);
    retryTimer = null;
  }

  function switchConversation(id) {
    if (destroyed || !find(id)) return false;
    const busy = wanted || inflight || state.sync.status === "error";
    if (id === state.currentId && !busy && state.serverActiveId === id) return true; // nothing to do
    switchVersion += 1;
    wanted = { id, v: switchVersion };
    set({
      currentId: id,
      loading: { [id]: true }, // only the user's latest choice shows as loading
      itemErrors: omit(state.itemErrors, id),
      sync: { ...state.sync, status: state.sync.status === "error" ? "error" : "syncing" },
    });
    persist();
    loadMessages(id);
    clearRetry(); // a new choice goes out now, not after the backoff
    pump();
    return true;
  }

  function pump() {
    if (destroyed || inflight || state.unauthorized) return;
    clearRetry();
    const job = pendingCreates[0];
    if (job) {
      const activate = Boolean(wanted && wanted.id === job.id);
      inflight = { kind: "create", id: job.id, v: activate ? wanted.v : null, epoch };
      if (state.sync.status !== "error") set({ sync: { ...state.sync, status: "syncing" } });
      const createJob = inflight;
      const req = api.createSession({
        id: job.id,
        title: job.title ?? undefined,
        is_active: activate ? true : undefined,
        scope: activate ? state.scope ?? undefined : undefined,
      });
      req.then((res) => onCreated(createJob, res), (err) => onChannelError(createJob, err));
      return;
    }
    if (!wanted) {
      // Nothing left to send: a leftover "syncing"/"not synced" no longer applies.
      if (state.sync.status !== "synced" && !listFailed && !state.list.revalidating) set({ sync: synced() });
      return;
    }
    inflight = { kind: "switch", id: wanted.id, v: wanted.v, epoch };
    if (state.sync.status !== "error") set({ sync: { ...state.sync, status: "syncing" } });
    const req = api.updateSession({ id: wanted.id, is_active: true, scope: state.scope ?? undefined });
    const job2 = inflight;
    req.then((res) => onSwitched(job2, res), (err) => onChannelError(job2, err));
  }

  function settleSwitch(id, session) {
    // The server confirmed `id` as active and no newer choice is waiting.
    wanted = null;
    attempt = 0;
    const loading = omit(state.loading, id);
    let conversations = state.conversations;
    if (session) {
      applySession(session, { authoritative: false });
      conversations = state.conversations;
    }
    set({
      conversations: withActiveFlags(conversations, id),
      serverActiveId: id,
      loading,
      sync: synced(),
    });
    persist();
  }

  function onCreated(job, res) {
    inflight = null;
    const session = res && res.session;
    if (destroyed) {
      // Signed out meanwhile: a delete flushed then still waits for this create (it goes out
      // with this store's API client, so with the token of the user who made it).
      createdWaiters.get(job.id)?.resolve(session);
      createdWaiters.delete(job.id);
      return;
    }
    const pi = pendingCreates.findIndex((p) => p.id === job.id);
    if (pi >= 0) pendingCreates.splice(pi, 1);
    if (session) applySession(session, { authoritative: false });
    if (find(job.id)?._local) {
      set({ conversations: replaceConversation(job.id, ({ _local, ...c }) => c) });
    }
    createdWaiters.get(job.id)?.resolve(session);
    createdWaiters.delete(job.id);
    if (hidden.has(job.id)) {
      const h = hidden.get(job.id);
      delete h.conv._local;
    }
    // The create carried is_active only if this was the latest choice at the time.
    const activated = job.v !== null && job.epoch === epoch && session && session.is_active;
    if (activated && wanted && wanted.id === job.id) settleSwitch(job.id, null);
    else if (!wanted && !pendingCreates.length) set({ sync: synced() });
    persist();
    pump();
  }

  function onSwitched(job, res) {
    inflight = null;
    if (destroyed) return;
    if (job.epoch !== epoch) return pump(); // scope changed meanwhile: the answer is moot
    const session = res && res.session;
    if (wanted && wanted.id !== job.id) {
      // Superseded: a newer choice is waiting. Keep its data, not its activeness.
      if (session) applySession(session, { authoritative: false });
      return pump();
    }
    settleSwitch(job.id, session);
    pump();
  }

  function onChannelError(job, err) {
    inflight = null;
    if (destroyed) {
      if (job.kind === "create") {
        createdWaiters.get(job.id)?.reject(err);
        createdWaiters.delete(job.id);
      }
      return;
    }
    if (is401(err)) return unauthorized(err);
    if (job.kind === "create") {
      if (!isRetriable(err)) {
        // The server refused to create it: drop the local conversation.
        const waiter = createdWaiters.get(job.id);
        createdWaiters.delete(job.id);
        const title = find(job.id)?.title;
        removeLocally(job.id);
        waiter?.reject(err);
        set({ lastError: errorInfo(err, "create", job.id) });
        if (title !== undefined) set({ notice: { id: job.id, message: `Couldn't create the conversation: ${err.message}` } });
        return pump();
      }
      return scheduleRetry(err);
    }
    if (job.epoch !== epoch) return pump();
    if (is404(err)) {
      applyServerRemoval(job.id);
      return pump();
    }
    if (!wanted || wanted.id !== job.id) return pump(); // superseded anyway: send the newer one
    // Keep the local choice on screen (the fallback) and tell the user.
    set({ lastError: errorInfo(err, "switch", job.id) });
    if (isRetriable(err)) return scheduleRetry(err);
    set({ sync: { status: "error", reason: err.message, code: err.code, retryAt: null, attempt } });
    persist();
  }

  function scheduleRetry(err) {
    attempt += 1;
    const delay = Math.min(o.retryBaseMs * 2 ** (attempt - 1), o.retryMaxMs);
    clearRetry();
    retryTimer = timers.setTimeout(() => {
      retryTimer = null;
      pump();
    }, delay);
    set({ sync: { status: "error", reason: err.message, code: err.code, retryAt: now() + delay, attempt } });
    persist();
  }

  // Manual retry ("Retry now"): the pending choice and a failed list load go out at once.
  function retrySync() {
    if (destroyed) return;
    clearRetry();
    if (listFailed) {
      if (listRetryTimer !== null) timers.clearTimeout(listRetryTimer);
      listRetryTimer = null;
      revalidate();
    }
    if (wanted || pendingCreates.length) {
      if (!inflight) set({ sync: { ...state.sync, status: "syncing", retryAt: null } });
      pump();
    } else if (!listFailed) {
      set({ sync: synced() });
    }
  }

  // ---- loading the list -----------------------------------------------------------------
  function init() {
    const cached = readCache();
    if (cached && Array.isArray(cached.conversations)) {
      const conversations = cached.conversations.filter((c) => c && c.id);
      for (const c of conversations) {
        if (c._local) {
          pendingCreates.push({ id: c.id, title: c.title ?? null });
          createdWaiters.set(c.id, deferred());
        } else noteServerTitle(c);
      }
      const messages = {};
      for (const [id, items] of Object.entries(cached.messages || {})) {
        if (Array.isArray(items)) messages[id] = { items, loading: false, loaded: false, error: null };
      }
      const currentId = conversations.some((c) => c.id === cached.currentId) ? cached.currentId : null;
      set({
        conversations,
        currentId,
        messages,
        list: { ...state.list, status: "cached", fromCache: true },
        sync: { ...state.sync, status: "syncing" },
      });
      if (cached.pendingSwitch && conversations.some((c) => c.id === cached.pendingSwitch)) {
        // A choice made before the reload never reached the server: send it now.
        switchVersion += 1;
        wanted = { id: cached.pendingSwitch, v: switchVersion };
        set({ currentId: wanted.id, loading: { [wanted.id]: true } });
      }
      if (pendingCreates.length || wanted) pump();
    } else {
      set({ list: { ...state.list, status: "loading" }, sync: { ...state.sync, status: "syncing" } });
    }
    return revalidate();
  }

  // Fetch the first page; the server wins, except for a local choice still travelling.
  async function revalidate() {
    if (destroyed) return;
    const gen = ++listGen;
    const ep = epoch;
    const sv = switchVersion;
    // What the server had when the list was asked for: a conversation missing from the answer
    // was deleted elsewhere only if it is one of these.
    const known = new Set();
    for (const c of state.conversations) if (!isLocal(c.id)) known.add(c.id);
    for (const id of hidden.keys()) if (!isLocal(id)) known.add(id);
    set({ list: { ...state.list, loadingMore: false, revalidating: true } });
    let res;
    try {
      res = await api.listSessions({ limit: o.pageSize, scope: state.scope ?? undefined });
    } catch (err) {
      if (destroyed || gen !== listGen || ep !== epoch) return;
      if (is401(err)) return unauthorized(err);
      listFailed = true;
      const hasData = state.conversations.length > 0 || state.list.status === "loaded";
      // Keep showing what we have (the saved copy) and try again with backoff.
      let retryAt = null;
      if (isRetriable(err)) {
        listAttempt += 1;
        const delay = Math.min(o.retryBaseMs * 2 ** (listAttempt - 1), o.retryMaxMs);
        if (listRetryTimer !== null) timers.clearTimeout(listRetryTimer);
        listRetryTimer = timers.setTimeout(() => {
          listRetryTimer = null;
          revalidate();
        }, delay);
        retryAt = now() + delay;
      }
      set({
        list: { ...state.list, status: hasData ? state.list.status : "error", revalidating: false, error: err.message },
        lastError: errorInfo(err, "load"),
        sync: { status: "error", reason: err.message, code: err.code, retryAt, attempt: listAttempt },
      });
      return;
    }
    listAttempt = 0;
    if (listRetryTimer !== null) timers.clearTimeout(listRetryTimer);
    listRetryTimer = null;
    if (destroyed || gen !== listGen || ep !== epoch) return;
    listFailed = false;
    const fresh = (res.sessions || []).filter((s) => !hidden.has(s.id));
    const freshIds = new Set(fresh.map((s) => s.id));
    const locals = state.conversations.filter((c) => c._local && !freshIds.has(c.id));
    // Created (or announced by a live update) after the list was asked for: not in it yet.
    const arrived = state.conversations.filter((c) => !c._local && !freshIds.has(c.id) && !known.has(c.id));
    let tail = [];
    let nextCursor = res.next_cursor ?? null;
    if (state.list.pages > 1) {
      // Keep the older pages already loaded, and their cursor.
      tail = state.conversations.filter((c) => !c._local && !freshIds.has(c.id) && known.has(c.id));
      nextCursor = state.list.nextCursor;
    }
    const merged = fresh.map((s) => {
      noteServerTitle(s);
      const local = find(s.id);
      return renames.has(s.id) && local ? { ...s, title: local.title } : { ...s };
    });
    let conversations = [...locals, ...merged, ...tail];
    for (const c of arrived) conversations = insertByRecency(conversations, c);
    const switchInFlight = Boolean(inflight && inflight.kind === "switch" && inflight.epoch === epoch);
    const localChoicePending = Boolean(wanted || switchInFlight || switchVersion !== sv);
    const serverActive = res.active_session_id && !hidden.has(res.active_session_id) ? res.active_session_id : null;
    let currentId = state.currentId;
    let adopt = null;
    if (!localChoicePending && !serverActive && adoptOnEmpty && conversations.some((c) => c.id === adoptOnEmpty)) {
      // A fresh device scope has nothing active yet: keep what is open and make it active there.
      adopt = adoptOnEmpty;
    } else if (!localChoicePending) {
      currentId = serverActive; // the server wins: resume where this account (or device) left off
      conversations = withActiveFlags(conversations, serverActive);
    } else {
      conversations = withActiveFlags(conversations, state.serverActiveId);
    }
    const patch = {
      conversations,
      currentId,
      serverActiveId: serverActive,
      list: { status: "loaded", fromCache: false, nextCursor, loadingMore: false, error: null, revalidating: false, pages: Math.max(1, state.list.pages) },
    };
    if (!localChoicePending && !adopt && !pendingCreates.length && !inflight) {
      patch.sync = synced();
      patch.loading = {};
      attempt = 0;
    }
    adoptOnEmpty = null;
    set(patch);
    persist();
    if (adopt) switchConversation(adopt);
    if (currentId && !find(currentId)) {
      // Active but older than the first page: fetch it on its own.
      try {
        const one = await api.getSession({ id: currentId, scope: state.scope ?? undefined });
        if (!destroyed && ep === epoch && one && one.session) applySession(one.session, { insert: true });
      } catch (err) {
        if (is401(err)) return unauthorized(err);
        if (is404(err) && state.currentId === currentId && !wanted) set({ currentId: null });
      }
    }
    if (state.currentId) loadMessages(state.currentId);
  }

  async function loadMore() {
    if (destroyed || !state.list.nextCursor || state.list.loadingMore) return;
    const gen = listGen;
    const ep = epoch;
    set({ list: { ...state.list, loadingMore: true, error: null } });
    let res;
    try {
      res = await api.listSessions({ limit: o.pageSize, cursor: state.list.nextCursor, scope: state.scope ?? undefined });
    } catch (err) {
      if (destroyed || gen !== listGen || ep !== epoch) return;
      if (is401(err)) return unauthorized(err);
      set({ list: { ...state.list, loadingMore: false, error: err.message }, lastError: errorInfo(err, "load-more") });
      return;
    }
    if (destroyed || gen !== listGen || ep !== epoch) return; // the list was reloaded meanwhile
    const have = new Set(state.conversations.map((c) => c.id));
    const more = (res.sessions || []).filter((s) => !have.has(s.id) && !hidden.has(s.id));
    for (const s of more) noteServerTitle(s);
    const flagged = more.map((s) => ({ ...s, is_active: s.id === state.serverActiveId }));
    set({
      conversations: [...state.conversations, ...flagged],
      list: { ...state.list, loadingMore: false, nextCursor: res.next_cursor ?? null, pages: state.list.pages + 1 },
    });
  }

  // ---- messages -------------------------------------------------------------------------
  function bucket(id) {
    return state.messages[id] || { items: [], loading: false, loaded: false, error: null };
  }
  function setBucket(id, patch) {
    if (!find(id) && !hidden.has(id)) return;
    set({ messages: { ...state.messages, [id]: { ...bucket(id), ...patch } } });
  }
  // Messages always go into the bucket of the session they belong to, whatever is open.
  function mergeMessages(id, incoming) {
    const items = bucket(id).items.slice();
    for (const m of incoming) {
      const i = items.findIndex((x) => x.id === m.id);
      const clean = { ...m };
      if (i >= 0) items[i] = { ...clean, _order: items[i]._order };
      else items.push(clean);
    }
    return sortMessages(items);
  }

  function loadMessages(id) {
    if (destroyed || !id) return Promise.resolve();
    if (messageLoads.has(id)) return messageLoads.get(id);
    if (isLocal(id)) {
      setBucket(id, { loaded: true });
      return Promise.resolve();
    }
    const run = (async () => {
      setBucket(id, { loading: true, error: null });
      let after = null;
      for (const m of bucket(id).items) if (m.seq != null && (after === null || m.seq > after)) after = m.seq;
      try {
        for (let page = 0; page < 100; page++) {
          const res = await api.listMessages({ session_id: id, after: after ?? undefined, limit: o.messagesPageSize });
          if (destroyed) return;
          const got = res.messages || [];
          const byId = new Map();
          for (const m of got) {
            const sid = m.session_id || id;
            if (!byId.has(sid)) byId.set(sid, []);
            byId.get(sid).push(m);
          }
          for (const [sid, list] of byId) setBucket(sid, { items: mergeMessages(sid, list) });
          if (res.next_after == null || got.length === 0) break;
          after = res.next_after;
        }
        setBucket(id, { loading: false, loaded: true, error: null });
        if (id === state.currentId) persist();
      } catch (err) {
        if (destroyed) return;
        if (is401(err)) return unauthorized(err);
        if (is404(err)) return applyServerRemoval(id);
        setBucket(id, { loading: false, error: err.message });
      } finally {
        messageLoads.delete(id);
      }
    })();
    messageLoads.set(id, run);
    return run;
  }

  // Append a user message. The session id is captured now: the message stays in that
  // conversation whatever the user opens before the server answers.
  function sendMessage(content, { sessionId } = {}) {
    const text = String(content ?? "").trim();
    if (!text || destroyed) return Promise.resolve(null);
    let sid = sessionId ?? state.currentId;
    if (!sid || !find(sid)) sid = createConversation();
    const conv = find(sid);
    const untitled = conv && (!conv.title || o.defaultTitles.includes(conv.title));
    if (o.autoTitle && untitled && !conv.message_count && !bucket(sid).items.length) {
      const title = o.autoTitle(text);
      if (title) renameConversation(sid, title);
    }
    const message = {
      id: makeId(),
      session_id: sid,
      seq: null,
      role: "user",
      content: text,
      model: null,
      metadata: {},
      created_at: new Date(now()).toISOString(),
      _status: "sending",
      _order: ++messageOrder,
    };
    setBucket(sid, { items: sortMessages([...bucket(sid).items, message]) });
    return deliver(sid, message.id);
  }

  function retryMessage(sessionId, messageId) {
    const m = bucket(sessionId).items.find((x) => x.id === messageId);
    if (!m || m._status !== "failed") return Promise.resolve(null);
    markMessage(sessionId, messageId, { _status: "sending", _error: null });
    return deliver(sessionId, messageId);
  }

  function markMessage(sid, mid, patch) {
    setBucket(sid, { items: bucket(sid).items.map((m) => (m.id === mid ? { ...m, ...patch } : m)) });
  }

  function deliver(sid, mid) {
    // Serialized per conversation, so messages get their seq in the order they were sent.
    const prev = messageChains.get(sid) || Promise.resolve();
    const next = prev.then(async () => {
      const m = bucket(sid).items.find((x) => x.id === mid);
      if (!m || destroyed) return null;
      try {
        const waiting = pendingCreate(sid);
        if (waiting) {
          await waiting;
          if (destroyed) return null;
        }
        const res = await api.appendMessages({
          session_id: sid,
          message: { id: m.id, role: m.role, content: m.content, metadata: m.metadata || {} },
        });
        if (destroyed) return null;
        const saved = res.messages || [];
        for (const sm of saved) setBucket(sm.session_id || sid, { items: mergeMessages(sm.session_id || sid, [sm]) });
        if (res.session) {
          applySession(res.session, { authoritative: false });
          moveToTop(res.session.id);
        }
        if (sid === state.currentId) persist();
        return saved[0] || null;
      } catch (err) {
        if (destroyed) return null;
        if (is401(err)) {
          unauthorized(err);
          return null;
        }
        if (is404(err) && err.code === "session_not_found") {
          applyServerRemoval(sid);
          return null;
        }
        markMessage(sid, mid, { _status: "failed", _error: err.message });
        set({ lastError: errorInfo(err, "send", sid) });
        return null;
      }
    });
    messageChains.set(sid, next.catch(() => null));
    return next;
  }

  function moveToTop(id) {
    const i = indexOf(id);
    if (i <= 0) return;
    const firstServer = state.conversations.findIndex((c) => !c._local);
    if (firstServer < 0 || i <= firstServer) return;
    const conversations = state.conversations.slice();
    const [c] = conversations.splice(i, 1);
    conversations.splice(firstServer, 0, c);
    set({ conversations });
    persist();
  }

  // ---- create, rename, delete -----------------------------------------------------------
  function createConversation({ title = null } = {}) {
    const id = makeId();
    const ts = new Date(now()).toISOString();
    const conv = {
      id,
      user_id: null,
      title,
      created_at: ts,
      updated_at: ts,
      last_activity: ts,
      message_count: 0,
      total_tokens: 0,
      last_model: null,
      last_message_preview: null,
      last_message_timestamp: null,
      is_active: false,
      _local: true,
    };
    pendingCreates.push({ id, title });
    createdWaiters.set(id, deferred());
    set({
      conversations: [conv, ...state.conversations],
      messages: { ...state.messages, [id]: { items: [], loading: false, loaded: true, error: null } },
    });
    switchConversation(id); // goes out as the create itself (is_active: true)
    return id;
  }

  // Renames of one conversation go to the server one at a time, in order, so the last one
  // asked for is the last one committed. The list shows the newest title at once.
  function renameConversation(id, rawTitle) {
    const conv = find(id);
    if (!conv || destroyed) return Promise.resolve(false);
    const title = String(rawTitle ?? "").trim();
    if (!title || title === conv.title) return Promise.resolve(true);
    const v = ++renameSeq;
    renames.set(id, { v });
    set({
      conversations: replaceConversation(id, (c) => ({ ...c, title })),
      itemErrors: omit(state.itemErrors, id),
    });
    const next = (renameChains.get(id) || Promise.resolve()).then(() => sendRename(id, title, v, conv.title));
    const chain = next.catch(() => false);
    renameChains.set(id, chain);
    chain.then(() => {
      if (renameChains.get(id) === chain) renameChains.delete(id);
    });
    return next;
  }

  async function sendRename(id, title, v, before) {
    if (destroyed || (!find(id) && !hidden.has(id))) return false; // gone meanwhile
    let res;
    try {
      const waiting = pendingCreate(id);
      if (waiting) {
        await waiting;
        if (destroyed) return false;
      }
      res = await api.updateSession({ id, title, scope: state.scope ?? undefined });
    } catch (err) {
      if (destroyed || renames.get(id)?.v !== v) return false; // a newer rename (queued) decides
      renames.delete(id);
      if (is401(err)) {
        unauthorized(err);
        return false;
      }
      if (is404(err)) {
        applyServerRemoval(id);
        return false;
      }
      // Roll back to the title the server confirmed last, and say why.
      const previous = serverTitles.has(id) ? serverTitles.get(id).title : before;
      set({
        conversations: replaceConversation(id, (c) => ({ ...c, title: previous })),
        itemErrors: { ...state.itemErrors, [id]: `Rename failed: ${err.message}` },
        lastError: errorInfo(err, "rename", id),
      });
      persist();
      return false;
    }
    if (destroyed) return false;
    const latest = renames.get(id)?.v === v;
    if (latest) renames.delete(id);
    if (res && res.session) {
      // A newer rename still queued keeps its title on screen; this one only updates what
      // the server holds. Otherwise the answer is applied.
      if (renames.has(id)) noteServerTitle(res.session);
      else applySession(res.session, { authoritative: false });
    }
    persist();
    return true;
  }

  // Delete after an undo window; the item leaves the list at once.
  function deleteConversation(id) {
    const i = indexOf(id);
    if (i < 0 || destroyed) return false;
    const conv = state.conversations[i];
    const timer = timers.setTimeout(() => commitDelete(id), o.deleteDelayMs);
    hidden.set(id, { conv, index: i, timer });
    const conversations = state.conversations.filter((c) => c.id !== id);
    set({
      conversations,
      pendingDeletes: [...state.pendingDeletes, { id, title: conv.title, expiresAt: now() + o.deleteDelayMs }],
      itemErrors: omit(state.itemErrors, id),
    });
    if (state.currentId === id) {
      const neighbour = conversations[i] || conversations[i - 1] || null;
      if (neighbour) switchConversation(neighbour.id);
      else {
        if (wanted && wanted.id === id) wanted = null;
        set({ currentId: null, loading: {} });
      }
    }
    persist();
    return true;
  }

  function undoDelete(id) {
    const h = hidden.get(id);
    if (!h || h.timer === null) return false; // too late: already sent
    timers.clearTimeout(h.timer);
    hidden.delete(id);
    restore(h);
    return true;
  }

  function restore(h) {
    const conversations = state.conversations.slice();
    if (!conversations.some((c) => c.id === h.conv.id)) {
      conversations.splice(Math.min(h.index, conversations.length), 0, { ...h.conv, is_active: h.conv.id === state.serverActiveId });
    }
    set({ conversations, pendingDeletes: state.pendingDeletes.filter((p) => p.id !== h.conv.id) });
    persist();
  }

  async function commitDelete(id, { keepalive = false } = {}) {
    const h = hidden.get(id);
    if (!h || h.timer === null) return;
    timers.clearTimeout(h.timer);
    h.timer = null;
    set({ pendingDeletes: state.pendingDeletes.filter((p) => p.id !== id) });
    const pi = pendingCreates.findIndex((p) => p.id === id);
    if (pi >= 0 && !(inflight && inflight.id === id)) {
      // Never reached the server: nothing to delete there.
      pendingCreates.splice(pi, 1);
      createdWaiters.get(id)?.reject(new ApiError("deleted", { status: 0, code: "deleted" }));
      createdWaiters.delete(id);
      hidden.delete(id);
      removeLocally(id);
      return;
    }
    try {
      // Sent at once unless the create is still on its way: an await here would let a
      // sign-out run first (app.js binds each store's API client to its user's token).
      const waiting = pendingCreate(id);
      if (waiting) {
        try {
          await waiting;
        } catch {
          // The server refused the create (or the store was dropped): nothing to delete there.
          if (destroyed) return;
          hidden.delete(id);
          removeLocally(id);
          return;
        }
      }
      await api.deleteSession({ id, keepalive });
    } catch (err) {
      if (destroyed) return;
      if (is401(err)) return unauthorized(err);
      if (!is404(err)) {
        hidden.delete(id);
        restore(h);
        const title = h.conv.title || "Untitled conversation";
        set({ lastError: { ...errorInfo(err, "delete", id), message: `Couldn't delete “${title}”: ${err.message}` } });
        return;
      }
    }
    hidden.delete(id);
    removeLocally(id);
  }

  // Send deletes still inside their undo window now (the page is going away).
  function flushDeletes() {
    for (const [id, h] of hidden) if (h.timer !== null) commitDelete(id, { keepalive: true });
  }

  // ---- scope ----------------------------------------------------------------------------
  // null: the active conversation is the account's; a string: this device's own.
  async function setScope(scope) {
    if (scope != null && !isValidScope(scope)) throw new Error(`invalid scope: ${scope}`);
    if ((scope ?? null) === state.scope) return;
    adoptOnEmpty = state.currentId;
    epoch += 1;
    clearRetry();
    wanted = null;
    attempt = 0;
    set({
      scope: scope ?? null,
      serverActiveId: null,
      loading: {},
      sync: { status: "syncing", reason: null, code: null, retryAt: null, attempt: 0 },
      list: { ...state.list, pages: 0 },
    });
    await revalidate();
  }

  return {
    getState: () => state,
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    init,
    revalidate,
    loadMore,
    loadMessages,
    switchConversation,
    retrySync,
    createConversation,
    renameConversation,
    deleteConversation,
    undoDelete,
    commitDelete,
    flushDeletes,
    sendMessage,
    retryMessage,
    setScope,
    applyServerSession: (s) => applySession(s, { authoritative: true, insert: true }),
    applyServerRemoval,
    dismissNotice: () => set({ notice: null }),
    dismissError: () => set({ lastError: null }),
    clearItemError: (id) => set({ itemErrors: omit(state.itemErrors, id) }),
    destroy() {
      destroyed = true;
      epoch += 1;
      clearRetry();
      if (listRetryTimer !== null) timers.clearTimeout(listRetryTimer);
      for (const h of hidden.values()) if (h.timer !== null) timers.clearTimeout(h.timer);
      listeners.clear();
    },
    // For tests and debugging: what the switch channel is doing.
    _debug: () => ({ wanted, inflight, attempt, pendingCreates: pendingCreates.slice(), switchVersion }),
  };
}
