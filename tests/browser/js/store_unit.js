// Unit tests of store.js, run inside Chromium by tests/browser/test_store_unit.py.
// A fake fetch holds every request until the test answers it, a fake clock drives the
// store's timers, and a Map stands in for localStorage: no server, no DOM.
import { createStore } from "../store.js";

const tests = [];
const test = (name, fn) => tests.push({ name, fn });

class AssertionError extends Error {}
function assert(cond, message) {
  if (!cond) throw new AssertionError(message || "assertion failed");
}
function eq(actual, expected, message) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new AssertionError(`${message || "not equal"}: got ${a}, expected ${e}`);
}
// Let promise callbacks and the fake Response bodies run.
const settle = async () => {
  for (let i = 0; i < 3; i++) await new Promise((r) => setTimeout(r, 0));
};

function fakeServer() {
  const pending = [];
  const log = [];
  const auto = [];
  async function fetch(url, init = {}) {
    const u = new URL(url, "http://store.test");
    const call = {
      method: init.method || "GET",
      path: u.pathname,
      query: Object.fromEntries(u.searchParams),
      body: init.body ? JSON.parse(init.body) : null,
      headers: init.headers || {},
    };
    let resolve;
    let reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    call.respond = (status, body) =>
      resolve(new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } }));
    call.fail = () => reject(new TypeError("Failed to fetch"));
    log.push(call);
    const rule = auto.find((r) => r.method === call.method && r.path === call.path);
    if (rule) {
      const [status, body] = rule.reply(call);
      call.respond(status, body);
    } else pending.push(call);
    return promise;
  }
  return {
    fetch,
    log,
    pending,
    auto(method, path, reply) {
      auto.push({ method, path, reply });
    },
    // The oldest unanswered request to method+path (fails the test if there is none).
    take(method, path) {
      const i = pending.findIndex((c) => c.method === method && c.path === path);
      assert(i >= 0, `no pending ${method} ${path}; pending: ${pending.map((c) => `${c.method} ${c.path}`).join(", ")}`);
      return pending.splice(i, 1)[0];
    },
    count(method, path) {
      return pending.filter((c) => c.method === method && c.path === path).length;
    },
  };
}

function fakeClock(start = Date.parse("2024-05-01T12:00:00Z")) {
  let t = start;
  let seq = 0;
  const timers = new Map();
  return {
    now: () => t,
    timers: {
      setTimeout(fn, ms) {
        const id = ++seq;
        timers.set(id, { at: t + ms, fn });
        return id;
      },
      clearTimeout(id) {
        timers.delete(id);
      },
    },
    pendingTimers: () => timers.size,
    advance(ms) {
      t += ms;
      for (const [id, tm] of Array.from(timers).sort((a, b) => a[1].at - b[1].at)) {
        if (tm.at <= t && timers.has(id)) {
          timers.delete(id);
          tm.fn();
        }
      }
    },
  };
}

function memoryStorage(initial = {}) {
  const m = new Map(Object.entries(initial));
  return {
    getItem: (k) => (m.has(k) ? m.get(k) : null),
    setItem: (k, v) => m.set(k, String(v)),
    removeItem: (k) => m.delete(k),
    map: m,
  };
}

let minute = 0;
function S(id, extra = {}) {
  const ts = new Date(Date.parse("2024-05-01T10:00:00Z") + ++minute * 60000).toISOString();
  return {
    id,
    user_id: "u1",
    title: `Title ${id}`,
    created_at: ts,
    updated_at: ts,
    last_activity: ts,
    message_count: 0,
    total_tokens: 0,
    last_model: null,
    last_message_preview: null,
    last_message_timestamp: null,
    is_active: false,
    ...extra,
  };
}

// A store already loaded with sessions A, B, C (A active on the server).
async function loaded({ scope, storage, ids = ["A", "B", "C"], active = "A", options = {} } = {}) {
  const server = fakeServer();
  server.auto("GET", "/api/chat/messages", () => [200, { messages: [], next_after: null }]);
  const clock = fakeClock();
  let n = 0;
  const store = createStore({
    fetch: server.fetch,
    getToken: () => "tok",
    timers: clock.timers,
    now: clock.now,
    storage: storage || memoryStorage(),
    randomId: () => `new-${++n}`,
    scope,
    timeoutMs: 0,
    ...options,
  });
  const ready = store.init();
  await settle();
  server
    .take("GET", "/api/chat/sessions")
    .respond(200, { sessions: ids.map((id) => S(id, { is_active: id === active })), active_session_id: active, next_cursor: null });
  await ready;
  await settle();
  return { store, server, clock };
}

test("switch shows the choice at once and confirms it with the server", async () => {
  const { store, server } = await loaded();
  eq(store.getState().currentId, "A", "resumes the server's active session");
  store.switchConversation("B");
  eq(store.getState().currentId, "B", "on screen before any answer");
  eq(store.getState().loading, { B: true }, "B is loading");
  eq(store.getState().sync.status, "syncing");
  await settle();
  const call = server.take("POST", "/api/chat/session");
  eq(call.body, { id: "B", is_active: true }, "request body");
  eq(call.headers.Authorization, "Bearer tok", "token sent");
  call.respond(200, { session: S("B", { is_active: true, title: "Server title" }), success: true });
  await settle();
  const st = store.getState();
  eq(st.currentId, "B");
  eq(st.serverActiveId, "B");
  eq(st.loading, {}, "loading cleared");
  eq(st.sync.status, "synced");
  eq(st.conversations.find((c) => c.id === "B").title, "Server title", "reconciled with the server's session");
  eq(st.conversations.filter((c) => c.is_active).map((c) => c.id), ["B"], "only B active");
});

test("rapid switches: one request in flight, the newest waiting choice replaces older ones", async () => {
  const { store, server } = await loaded();
  store.switchConversation("B");
  store.switchConversation("C");
  store.switchConversation("A");
  store.switchConversation("C");
  await settle();
  eq(server.count("POST", "/api/chat/session"), 1, "at most one switch in flight");
  eq(store.getState().currentId, "C", "last click on screen");
  server.take("POST", "/api/chat/session").respond(200, { session: S("B", { is_active: true }), success: true });
  await settle();
  eq(store.getState().currentId, "C", "B's answer does not take the screen back");
  const next = server.take("POST", "/api/chat/session");
  eq(next.body.id, "C", "the newest choice goes next; A and the first C were dropped");
  eq(server.count("POST", "/api/chat/session"), 0);
  next.respond(200, { session: S("C", { is_active: true }), success: true });
  await settle();
  eq(store.getState().currentId, "C");
  eq(store.getState().serverActiveId, "C");
  eq(store.getState().sync.status, "synced");
  eq(server.log.filter((c) => c.method === "POST").map((c) => c.body.id), ["B", "C"], "requests sent, in order");
});

test("a response for a superseded choice is ignored (stale response)", async () => {
  const { store, server } = await loaded();
  store.switchConversation("B");
  await settle();
  const b = server.take("POST", "/api/chat/session");
  store.switchConversation("C");
  b.fail(); // the old request fails after the user moved on
  await settle();
  eq(store.getState().sync.status, "syncing", "no 'not synced' for a superseded choice");
  const c = server.take("POST", "/api/chat/session");
  eq(c.body.id, "C");
  c.respond(200, { session: S("C", { is_active: true }), success: true });
  await settle();
  eq(store.getState().currentId, "C");
  eq(store.getState().sync.status, "synced");
});

test("a list answered after a local switch does not undo it (out of order)", async () => {
  const { store, server } = await loaded();
  const reval = store.revalidate();
  await settle();
  const list = server.take("GET", "/api/chat/sessions");
  store.switchConversation("C");
  // The list was read before the switch: it still says A.
  list.respond(200, { sessions: [S("A", { is_active: true }), S("B"), S("C")], active_session_id: "A", next_cursor: null });
  await reval;
  await settle();
  eq(store.getState().currentId, "C", "local choice kept");
  server.take("POST", "/api/chat/session").respond(200, { session: S("C", { is_active: true }), success: true });
  await settle();
  eq(store.getState().serverActiveId, "C");
});

test("a failed switch keeps the local choice, says not synced and retries with backoff", async () => {
  const { store, server, clock } = await loaded();
  store.switchConversation("B");
  await settle();
  server.take("POST", "/api/chat/session").fail();
  await settle();
  let st = store.getState();
  eq(st.currentId, "B", "local choice kept (fallback)");
  eq(st.sync.status, "error");
  assert(/reach the server/.test(st.sync.reason), `reason: ${st.sync.reason}`);
  eq(st.sync.retryAt - clock.now(), 1000, "first retry after 1s");
  eq(server.count("POST", "/api/chat/session"), 0, "no retry before the delay");
  clock.advance(1000);
  await settle();
  server.take("POST", "/api/chat/session").respond(503, { error: "database unavailable", code: "unavailable" });
  await settle();
  st = store.getState();
  eq(st.sync.reason, "database unavailable", "server's reason shown");
  eq(st.sync.retryAt - clock.now(), 2000, "backoff doubles");
  clock.advance(2000);
  await settle();
  server.take("POST", "/api/chat/session").respond(200, { session: S("B", { is_active: true }), success: true });
  await settle();
  st = store.getState();
  eq(st.sync.status, "synced");
  eq(st.serverActiveId, "B");
  eq(clock.pendingTimers(), 0, "no retry left behind");
});

test("manual retry sends the pending choice at once", async () => {
  const { store, server, clock } = await loaded();
  store.switchConversation("C");
  await settle();
  server.take("POST", "/api/chat/session").fail();
  await settle();
  eq(store.getState().sync.status, "error");
  store.retrySync();
  await settle();
  const call = server.take("POST", "/api/chat/session");
  eq(call.body.id, "C");
  eq(clock.pendingTimers(), 0, "the scheduled retry was cancelled");
  call.respond(200, { session: S("C", { is_active: true }), success: true });
  await settle();
  eq(store.getState().sync.status, "synced");
});

test("a conversation deleted elsewhere (404) leaves the list with a notice", async () => {
  const { store, server } = await loaded();
  store.switchConversation("B");
  await settle();
  server.take("POST", "/api/chat/session").respond(404, { error: "session not found", code: "session_not_found" });
  await settle();
  const st = store.getState();
  eq(st.conversations.map((c) => c.id), ["A", "C"], "B removed");
  eq(st.currentId, null);
  assert(st.notice && /deleted/.test(st.notice.message), "notice shown");
  eq(st.sync.status, "synced", "nothing left to sync");
});

test("a refused rename is rolled back with the server's reason", async () => {
  const { store, server } = await loaded();
  const long = "x".repeat(256);
  const done = store.renameConversation("A", long);
  eq(store.getState().conversations[0].title, long, "optimistic");
  await settle();
  const call = server.take("POST", "/api/chat/session");
  eq(call.body, { id: "A", title: long });
  call.respond(400, { error: "title: String should have at most 255 characters", code: "invalid_request" });
  eq(await done, false, "reports failure");
  const st = store.getState();
  eq(st.conversations[0].title, "Title A", "rolled back");
  assert(/at most 255/.test(st.itemErrors.A), `item error: ${st.itemErrors.A}`);
  eq(st.lastError.code, "invalid_request");
  eq(st.lastError.op, "rename");
});

test("an older rename's answer does not overwrite a newer rename", async () => {
  const { store, server } = await loaded();
  const first = store.renameConversation("B", "one");
  await settle();
  const r1 = server.take("POST", "/api/chat/session");
  const second = store.renameConversation("B", "two");
  await settle();
  r1.respond(200, { session: S("B", { title: "one", updated_at: "2024-05-01T09:00:00Z", last_activity: "2024-05-01T09:00:00Z" }), success: true });
  eq(await first, true);
  await settle();
  eq(store.getState().conversations.find((c) => c.id === "B").title, "two", "the newer rename stays while on its way");
  const r2 = server.take("POST", "/api/chat/session");
  eq(r2.body, { id: "B", title: "two" }, "sent after the older one was answered");
  r2.respond(200, { session: S("B", { title: "two" }), success: true });
  eq(await second, true);
  await settle();
  eq(store.getState().conversations.find((c) => c.id === "B").title, "two");
});

test("a message stays in the conversation it was sent from", async () => {
  const { store, server } = await loaded();
  const sent = store.sendMessage("hello from A");
  await settle();
  const post = server.take("POST", "/api/chat/messages");
  eq(post.body.session_id, "A", "bound to the session open at send time");
  store.switchConversation("B"); // the user moves on before the answer
  await settle();
  server.take("POST", "/api/chat/session").respond(200, { session: S("B", { is_active: true }), success: true });
  post.respond(201, {
    messages: [{ id: post.body.message.id, session_id: "A", seq: 1, role: "user", content: "hello from A", metadata: {}, created_at: "2024-05-01T12:00:00Z" }],
    session: S("A", { message_count: 1, last_message_preview: "hello from A", is_active: false }),
  });
  await sent;
  await settle();
  const st = store.getState();
  eq(st.currentId, "B", "still on B");
  eq(st.messages.A.items.map((m) => [m.content, m.seq, m._status ?? null]), [["hello from A", 1, null]]);
  eq((st.messages.B?.items || []).length, 0, "nothing landed in B");
  eq(st.conversations.find((c) => c.id === "A").message_count, 1);
});

test("answers arriving out of order never lower counts or bring back an old title", async () => {
  const { store, server } = await loaded();
  const renamed = store.renameConversation("A", "Renamed");
  const sent = store.sendMessage("hi");
  await settle();
  const rename = server.take("POST", "/api/chat/session");
  const post = server.take("POST", "/api/chat/messages");
  // The message's transaction started first (older timestamp) but answers last.
  post.respond(201, {
    messages: [{ id: post.body.message.id, session_id: "A", seq: 1, role: "user", content: "hi", metadata: {}, created_at: "2024-05-01T11:00:00Z" }],
    session: S("A", { title: "Title A", message_count: 1, last_message_preview: "hi", last_message_timestamp: "2024-05-01T11:00:00Z", updated_at: "2024-05-01T11:00:00Z", last_activity: "2024-05-01T11:00:00Z" }),
  });
  await sent;
  rename.respond(200, { session: S("A", { title: "Renamed", message_count: 0, updated_at: "2024-05-01T11:00:01Z", last_activity: "2024-05-01T11:00:01Z" }), success: true });
  await renamed;
  await settle();
  const a = store.getState().conversations.find((c) => c.id === "A");
  eq([a.title, a.message_count, a.last_message_preview], ["Renamed", 1, "hi"]);
});

test("delete waits for the undo window; undo restores; then DELETE goes out", async () => {
  const { store, server, clock } = await loaded({ options: { deleteDelayMs: 5000 } });
  store.deleteConversation("B");
  eq(store.getState().conversations.map((c) => c.id), ["A", "C"], "hidden at once");
  eq(store.getState().pendingDeletes.map((p) => p.id), ["B"]);
  assert(store.undoDelete("B"), "undo");
  eq(store.getState().conversations.map((c) => c.id), ["A", "B", "C"], "restored in place");
  clock.advance(6000);
  await settle();
  eq(server.count("DELETE", "/api/chat/sessions"), 0, "nothing sent after undo");
  store.deleteConversation("A"); // the open one: the neighbour opens
  eq(store.getState().currentId, "B");
  clock.advance(5000);
  await settle();
  const del = server.take("DELETE", "/api/chat/sessions");
  eq(del.query, { id: "A" });
  del.respond(200, { success: true, id: "A" });
  await settle();
  eq(store.getState().pendingDeletes, []);
});

test("the cached state shows at once, then the server wins", async () => {
  const storage = memoryStorage();
  storage.setItem(
    "chatsessions:v1:state:account",
    JSON.stringify({ conversations: [S("A"), S("B", { is_active: true })], currentId: "B", pendingSwitch: null, messages: {} }),
  );
  const server = fakeServer();
  server.auto("GET", "/api/chat/messages", () => [200, { messages: [], next_after: null }]);
  const store = createStore({ fetch: server.fetch, storage, timeoutMs: 0 });
  const ready = store.init();
  let st = store.getState();
  eq(st.conversations.map((c) => c.id), ["A", "B"], "cached list before any answer");
  eq(st.currentId, "B");
  eq(st.list.status, "cached");
  await settle();
  server.take("GET", "/api/chat/sessions").respond(200, {
    sessions: [S("C", { is_active: true }), S("A")],
    active_session_id: "C",
    next_cursor: null,
  });
  await ready;
  st = store.getState();
  eq(st.conversations.map((c) => c.id), ["C", "A"], "server list replaces the cache (B was deleted elsewhere)");
  eq(st.currentId, "C", "server's active session opened");
  eq(JSON.parse(storage.getItem("chatsessions:v1:state:account")).currentId, "C", "cache updated");
  store.destroy();
});

test("offline at load: the saved copy stays, the list is retried with backoff", async () => {
  const storage = memoryStorage();
  storage.setItem(
    "chatsessions:v1:state:account",
    JSON.stringify({ conversations: [S("A", { is_active: true }), S("B")], currentId: "A", pendingSwitch: null, messages: {} }),
  );
  const server = fakeServer();
  server.auto("GET", "/api/chat/messages", () => [200, { messages: [], next_after: null }]);
  const clock = fakeClock();
  const store = createStore({ fetch: server.fetch, storage, timers: clock.timers, now: clock.now, timeoutMs: 0 });
  const ready = store.init();
  await settle();
  server.take("GET", "/api/chat/sessions").fail();
  await ready;
  let st = store.getState();
  eq(st.conversations.map((c) => c.id), ["A", "B"], "saved copy kept");
  eq(st.currentId, "A");
  eq(st.sync.status, "error");
  eq(st.sync.retryAt - clock.now(), 1000);
  clock.advance(1000);
  await settle();
  server.take("GET", "/api/chat/sessions").respond(200, { sessions: [S("A"), S("B", { is_active: true })], active_session_id: "B", next_cursor: null });
  await settle();
  st = store.getState();
  eq(st.sync.status, "synced");
  eq(st.currentId, "B", "then the server wins");
  store.destroy();
});

test("device scope goes with list and switch requests", async () => {
  const { store, server } = await loaded({ scope: "device-abc123" });
  eq(server.log[0].query, { limit: "50", scope: "device-abc123" });
  store.switchConversation("C");
  await settle();
  const call = server.take("POST", "/api/chat/session");
  eq(call.body, { id: "C", is_active: true, scope: "device-abc123" });
  let threw = false;
  try {
    createStore({ fetch: server.fetch, scope: "-bad scope" });
  } catch {
    threw = true;
  }
  assert(threw, "invalid scope refused");
});

test("a new conversation is created before a later switch, in order", async () => {
  const { store, server } = await loaded();
  const id = store.createConversation();
  eq(store.getState().currentId, id, "opened at once");
  store.switchConversation("B");
  await settle();
  const create = server.take("POST", "/api/chat/sessions");
  eq(create.body, { id, is_active: true }, "created as the active one (the choice at send time)");
  eq(server.count("POST", "/api/chat/session"), 0, "the switch waits for the create");
  create.respond(201, { session: S(id, { is_active: true, title: null }), success: true });
  await settle();
  const sw = server.take("POST", "/api/chat/session");
  eq(sw.body.id, "B");
  sw.respond(200, { session: S("B", { is_active: true }), success: true });
  await settle();
  eq(store.getState().currentId, "B");
  eq(store.getState().conversations[0].id, id);
  assert(!store.getState().conversations[0]._local, "no longer local");
});

test("applyServerSession follows another device's switch only when no choice is pending", async () => {
  const { store, server } = await loaded();
  store.applyServerSession(S("C", { is_active: true }));
  await settle();
  eq(store.getState().currentId, "C", "followed the live update");
  store.switchConversation("B");
  store.applyServerSession(S("A", { is_active: true }));
  eq(store.getState().currentId, "B", "a pending local choice wins");
  store.applyServerSession(S("D", { title: "from elsewhere" }));
  assert(store.getState().conversations.some((c) => c.id === "D"), "new session inserted");
  store.applyServerRemoval("A");
  assert(!store.getState().conversations.some((c) => c.id === "A"), "removal applied");
  assert(server.count("POST", "/api/chat/session") === 1, "B still in flight");
});

// ---- races found in review ------------------------------------------------------------

test("sign-out inside the undo window: the delete goes out at once, with the signed-out user's token", async () => {
  let token = "tok"; // app.js's token: it changes at sign-out / the next sign-in
  const { store, server } = await loaded({ options: { getToken: () => token, deleteDelayMs: 60000 } });
  store.deleteConversation("B");
  await settle();
  eq(server.count("DELETE", "/api/chat/sessions"), 0, "nothing sent inside the window");
  // What app.js does on sign-out, then the next user signs in.
  store.flushDeletes();
  store.destroy();
  token = "tok-of-the-next-user";
  await settle();
  const del = server.take("DELETE", "/api/chat/sessions");
  eq(del.query, { id: "B" });
  eq(del.headers.Authorization, "Bearer tok", "sent with the token of the user who deleted it");
});

test("sign-out while the deleted conversation's create is in flight: the delete follows the create", async () => {
  const bound = "tok"; // app.js binds each store's API client to the token it was started with
  const { store, server } = await loaded({ options: { getToken: () => bound, deleteDelayMs: 60000 } });
  const id = store.createConversation();
  await settle();
  const create = server.take("POST", "/api/chat/sessions");
  store.deleteConversation(id);
  store.flushDeletes();
  store.destroy();
  await settle();
  eq(server.count("DELETE", "/api/chat/sessions"), 0, "waits for the create");
  create.respond(201, { session: S(id, { is_active: true, title: null }), success: true });
  await settle();
  const del = server.take("DELETE", "/api/chat/sessions");
  eq(del.query, { id });
  eq(del.headers.Authorization, "Bearer tok");
  eq(server.pending.length, 0, "nothing else sent by the destroyed store");
});

test("renames of a conversation go out one at a time; a refused one rolls back to the last confirmed title", async () => {
  const { store, server } = await loaded();
  const first = store.renameConversation("B", "x");
  await settle();
  const r1 = server.take("POST", "/api/chat/session");
  eq(r1.body, { id: "B", title: "x" });
  const long = "y".repeat(256);
  const second = store.renameConversation("B", long);
  await settle();
  eq(store.getState().conversations.find((c) => c.id === "B").title, long, "optimistic");
  eq(server.count("POST", "/api/chat/session"), 0, "the second rename waits for the first");
  r1.respond(200, { session: S("B", { title: "x" }), success: true });
  eq(await first, true);
  await settle();
  eq(store.getState().conversations.find((c) => c.id === "B").title, long, "the newer rename still shows");
  const r2 = server.take("POST", "/api/chat/session");
  eq(r2.body, { id: "B", title: long });
  r2.respond(400, { error: "title: String should have at most 255 characters", code: "invalid_request" });
  eq(await second, false);
  const st = store.getState();
  eq(st.conversations.find((c) => c.id === "B").title, "x", "rolled back to what the server confirmed last");
  assert(/at most 255/.test(st.itemErrors.B), `item error: ${st.itemErrors.B}`);
});

test("conversations created while the list reloads stay in the list", async () => {
  const { store, server } = await loaded();
  const created = (id, at) => S(id, { is_active: true, title: null, created_at: at, updated_at: at, last_activity: at });
  const early = store.createConversation(); // its create is in flight when the list is asked for
  await settle();
  const create1 = server.take("POST", "/api/chat/sessions");
  const reval = store.revalidate();
  await settle();
  const list = server.take("GET", "/api/chat/sessions"); // read before either create commits
  create1.respond(201, { session: created(early, "2024-05-01T12:00:00.000Z"), success: true });
  await settle();
  const late = store.createConversation(); // created after the list was asked for
  await settle();
  server.take("POST", "/api/chat/sessions").respond(201, { session: created(late, "2024-05-01T12:00:01.000Z"), success: true });
  await settle();
  store.switchConversation("B"); // the user moves away from both
  await settle();
  server.take("POST", "/api/chat/session").respond(200, { session: S("B", { is_active: true }), success: true });
  await settle();
  list.respond(200, { sessions: [S("A", { is_active: true }), S("B"), S("C")], active_session_id: "A", next_cursor: null });
  await reval;
  await settle();
  const st = store.getState();
  eq(st.conversations.map((c) => c.id), [late, early, "A", "B", "C"], "both kept, newest first");
  eq(st.currentId, "B");
  assert(st.conversations.every((c) => !c._local), "none local any more");
  // A conversation the list had before and that is gone from the fresh one was deleted elsewhere.
  const reval2 = store.revalidate();
  await settle();
  server.take("GET", "/api/chat/sessions").respond(200, {
    sessions: [S(late), S(early), S("B", { is_active: true })],
    active_session_id: "B",
    next_cursor: null,
  });
  await reval2;
  await settle();
  eq(store.getState().conversations.map((c) => c.id), [late, early, "B"], "A and C dropped");
});

test("a refused rename rolls back to the newest title the server confirmed, whatever order answers came in", async () => {
  const { store, server } = await loaded();
  const renamed = store.renameConversation("A", "Renamed");
  const sent = store.sendMessage("hi");
  await settle();
  const rename = server.take("POST", "/api/chat/session");
  const post = server.take("POST", "/api/chat/messages");
  rename.respond(200, { session: S("A", { title: "Renamed", updated_at: "2024-05-02T11:00:01Z", last_activity: "2024-05-02T11:00:01Z" }), success: true });
  eq(await renamed, true);
  // The message's transaction started before the rename's: its answer carries the old title.
  post.respond(201, {
    messages: [{ id: post.body.message.id, session_id: "A", seq: 1, role: "user", content: "hi", metadata: {}, created_at: "2024-05-02T11:00:00Z" }],
    session: S("A", { title: "Title A", message_count: 1, last_message_preview: "hi", last_message_timestamp: "2024-05-02T11:00:00Z", updated_at: "2024-05-02T11:00:00Z", last_activity: "2024-05-02T11:00:00Z" }),
  });
  await sent;
  await settle();
  const refused = store.renameConversation("A", "z".repeat(256));
  await settle();
  server.take("POST", "/api/chat/session").respond(400, { error: "title too long", code: "invalid_request" });
  eq(await refused, false);
  eq(store.getState().conversations.find((c) => c.id === "A").title, "Renamed");
});

test("a conversation deleted while the server refuses its create stays gone", async () => {
  const { store, server } = await loaded({ options: { deleteDelayMs: 60000 } });
  const id = store.createConversation();
  await settle();
  const create = server.take("POST", "/api/chat/sessions");
  store.deleteConversation(id);
  store.commitDelete(id); // the undo toast dismissed while the create is on its way
  await settle();
  create.respond(400, { error: "invalid id", code: "invalid_request" });
  await settle();
  const st = store.getState();
  assert(!st.conversations.some((c) => c.id === id), "not brought back");
  eq(st.pendingDeletes, []);
  eq(server.count("DELETE", "/api/chat/sessions"), 0, "nothing to delete on the server");
  assert(!(st.lastError && /delete/.test(st.lastError.message)), `no delete error: ${st.lastError && st.lastError.message}`);
});

export const names = tests.map((t) => t.name);

export async function run(only = null) {
  const results = [];
  for (const t of tests) {
    if (only && !only.includes(t.name)) continue;
    try {
      await t.fn();
      results.push({ name: t.name, ok: true, error: null });
    } catch (err) {
      results.push({ name: t.name, ok: false, error: `${err && err.message}\n${(err && err.stack) || ""}` });
    }
  }
  return results;
}
