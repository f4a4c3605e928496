// app.js: the DOM side. Reads the store's state and renders it; turns clicks and keys
// into store actions. All server state goes through store.js.

import { createApi } from "./api.js";
import { createStore, randomHex } from "./store.js";

const config = { pageSize: 50, deleteUndoMs: 5000, retryBaseMs: 1000, retryMaxMs: 30000, apiBase: "", ...(window.CHATSESSIONS_CONFIG || {}) };
const KEYS = {
  token: "chatsessions:token",
  name: "chatsessions:user-name",
  deviceId: "chatsessions:device-id",
  deviceMode: "chatsessions:device-mode",
  statePrefix: "chatsessions:v1:state",
};

const $ = (id) => document.getElementById(id);
const storage = (() => {
  try {
    const s = window.localStorage;
    s.getItem("x");
    return s;
  } catch {
    const m = new Map();
    return { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => m.set(k, String(v)), removeItem: (k) => m.delete(k), key: () => null, length: 0 };
  }
})();

let token = null;
let rejectedToken = null; // a handed token that got a 401 is not tried again
const api = createApi({ baseUrl: config.apiBase, getToken: () => token });
let store = null;
let unsubscribe = null;

// ---- tokens --------------------------------------------------------------------------
// #access_token=... in the URL (then stripped), window.CHATSESSIONS_TOKEN, or the one
// kept in localStorage, in that order.
function takeToken() {
  const hash = location.hash.startsWith("#") ? location.hash.slice(1) : "";
  const frag = new URLSearchParams(hash);
  const fromHash = frag.get("access_token");
  if (fromHash) {
    frag.delete("access_token");
    frag.delete("token_type");
    frag.delete("expires_in");
    const rest = frag.toString();
    history.replaceState(history.state, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
    return fromHash;
  }
  const handed = typeof window.CHATSESSIONS_TOKEN === "string" ? window.CHATSESSIONS_TOKEN.trim() : "";
  if (handed && handed !== rejectedToken) return handed;
  return storage.getItem(KEYS.token);
}

function claims(jwt) {
  try {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = decodeURIComponent(
      Array.from(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")), (c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0")}`).join(""),
    );
    return JSON.parse(json) || {};
  } catch {
    return {};
  }
}
const userKey = (jwt) => {
  const c = claims(jwt);
  return String(c.sub || c.user_id || c.uid || "default").replace(/[^A-Za-z0-9._:-]/g, "_").slice(0, 80);
};

function deviceScope() {
  let id = storage.getItem(KEYS.deviceId);
  if (!id || !/^[a-f0-9]{8,32}$/.test(id)) {
    id = randomHex(8);
    storage.setItem(KEYS.deviceId, id);
  }
  return `device-${id}`;
}

// ---- sign in ---------------------------------------------------------------------------
async function showSignIn(message = "") {
  stopApp();
  $("app").hidden = true;
  $("signin").hidden = false;
  const msg = $("signin-message");
  msg.textContent = message;
  msg.hidden = !message;
  $("signin-error").hidden = true;
  $("signin-form").hidden = true;
  $("signin-embedded").hidden = true;
  try {
    const cfg = await api.authConfig();
    if (cfg && cfg.dev_sign_in) {
      $("signin-form").hidden = false;
      const input = $("signin-name");
      input.value = storage.getItem(KEYS.name) || "";
      input.focus();
    } else {
      $("signin-embedded").hidden = false;
    }
  } catch (err) {
    showSignInError(`Can't reach the server: ${err.message}. Reload to try again.`);
  }
}

function showSignInError(text) {
  const el = $("signin-error");
  el.textContent = text;
  el.hidden = false;
}

$("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const name = $("signin-name").value.trim();
  if (!name) return;
  const button = ev.submitter || $("signin-form").querySelector("button");
  button.disabled = true;
  $("signin-error").hidden = true;
  try {
    const res = await api.devToken(name);
    storage.setItem(KEYS.name, name);
    startApp(res.access_token);
  } catch (err) {
    showSignInError(`Sign-in failed: ${err.message}`);
  } finally {
    button.disabled = false;
  }
});

// ---- the app -------------------------------------------------------------------------
function startApp(newToken) {
  stopApp();
  token = newToken;
  storage.setItem(KEYS.token, token);
  const c = claims(token);
  const name = (c.user_metadata && c.user_metadata.name) || c.name || c.preferred_username || c.email || storage.getItem(KEYS.name) || "Signed in";
  $("user-name").textContent = name;
  $("avatar").textContent = String(name).trim().charAt(0).toUpperCase() || "?";
  const deviceMode = storage.getItem(KEYS.deviceMode) === "1";
  $("device-mode").checked = deviceMode;
  $("signin").hidden = true;
  $("app").hidden = false;
  resetDom();
  // The store gets its own API client, bound to this user's token: requests it still sends
  // after a sign-out (deletes flushed from their undo window) carry the token of the user
  // who made them, never none or the next user's.
  const boundToken = newToken;
  const storeApi = createApi({ baseUrl: config.apiBase, getToken: () => boundToken });
  store = createStore({
    api: storeApi,
    storage,
    scope: deviceMode ? deviceScope() : null,
    cachePrefix: `${KEYS.statePrefix}:${userKey(token)}`,
    pageSize: config.pageSize,
    deleteDelayMs: config.deleteUndoMs,
    retryBaseMs: config.retryBaseMs,
    retryMaxMs: config.retryMaxMs,
    autoTitle: config.autoTitle === false ? null : autoTitle,
    onUnauthorized: () => {
      if (token && token === window.CHATSESSIONS_TOKEN) rejectedToken = token;
      storage.removeItem(KEYS.token);
      token = null;
      showSignIn("Your session has ended. Please sign in again.");
    },
  });
  window.chatsessions = { store, api: storeApi };
  unsubscribe = store.subscribe(render);
  render(store.getState());
  lastRevalidate = Date.now();
  store.init();
}

function stopApp() {
  if (unsubscribe) unsubscribe();
  unsubscribe = null;
  if (store) {
    // Deletes still inside their undo window are sent now (as on pagehide), with this
    // store's token; one waiting for its conversation's create follows that create.
    store.flushDeletes();
    store.destroy();
  }
  store = null;
}

function signOut() {
  const key = token ? userKey(token) : null;
  stopApp();
  storage.removeItem(KEYS.token);
  if (key) {
    const prefix = `${KEYS.statePrefix}:${key}:`;
    const doomed = [];
    for (let i = 0; i < storage.length; i++) {
      const k = storage.key(i);
      if (k && k.startsWith(prefix)) doomed.push(k);
    }
    doomed.forEach((k) => storage.removeItem(k));
  }
  token = null;
  showSignIn("You are signed out.");
}

// A first message names its conversation: its first line, cut at a word near 48 chars.
function autoTitle(text) {
  const line = text.split("\n").map((l) => l.trim()).find(Boolean) || "";
  if (line.length <= 48) return line;
  const cut = line.slice(0, 48);
  const space = cut.lastIndexOf(" ");
  return `${(space > 24 ? cut.slice(0, space) : cut).replace(/[\s.,;:!?-]+$/, "")}…`;
}

// ---- formatting ----------------------------------------------------------------------
function relTime(iso, now = Date.now()) {
  const t = Date.parse(iso || "");
  if (Number.isNaN(t)) return "";
  const s = Math.round((now - t) / 1000);
  if (s < 45) return "now";
  const m = Math.round(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.round(m / 60);
  if (h < 24) return `${h}h`;
  const d = Math.round(h / 24);
  if (d === 1) return "yesterday";
  if (d < 7) return `${d}d`;
  const date = new Date(t);
  const sameYear = date.getFullYear() === new Date(now).getFullYear();
  return date.toLocaleDateString(undefined, sameYear ? { month: "short", day: "numeric" } : { year: "numeric", month: "short" });
}
const fullTime = (iso) => {
  const t = Date.parse(iso || "");
  return Number.isNaN(t) ? "" : new Date(t).toLocaleString();
};
const clock = (iso) => {
  const t = Date.parse(iso || "");
  return Number.isNaN(t) ? "" : new Date(t).toLocaleTimeString(undefined, { hour: "numeric", minute: "2-digit" });
};
const titleOf = (c) => (c && c.title) || "New conversation";
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const lastTime = (c) => c.last_message_timestamp || c.last_activity || c.updated_at || c.created_at;

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "html") el.innerHTML = v; // only for the static icons below
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children) if (child != null) el.append(child);
  return el;
}
const ICONS = {
  pencil: '<svg viewBox="0 0 20 20" width="15" height="15" aria-hidden="true"><path d="M13.6 3.4a2 2 0 0 1 2.8 2.8l-8.7 8.7-3.6.9.9-3.6z" fill="none" stroke="currentColor" stroke-width="1.6" stroke-linejoin="round"/></svg>',
  trash: '<svg viewBox="0 0 20 20" width="15" height="15" aria-hidden="true"><path d="M4 6h12M8 6V4h4v2M6 6l.7 10h6.6L14 6" fill="none" stroke="currentColor" stroke-width="1.6" stroke-linecap="round" stroke-linejoin="round"/></svg>',
};

// ---- sidebar -------------------------------------------------------------------------
const itemEls = new Map();
let editingId = null;
let focusId = null; // the item that keeps tabindex=0 (roving focus)

function resetDom() {
  itemEls.clear();
  $("conversation-list").replaceChildren();
  $("message-items").replaceChildren();
  messageEls.clear();
  shownConversation = undefined;
  editingId = null;
  focusId = null;
  $("toasts").replaceChildren();
  toastEls.clear();
}

function buildItem(id) {
  const title = h("span", { class: "conv-title", "data-testid": "conversation-title" });
  const time = h("time", { class: "conv-time", "data-testid": "conversation-time" });
  const preview = h("span", { class: "conv-preview", "data-testid": "conversation-preview" });
  const count = h("span", { class: "conv-count", "data-testid": "conversation-count" });
  const error = h("span", { class: "conv-error", "data-testid": "conversation-error", role: "alert" });
  const open = h(
    "button",
    { type: "button", class: "conv-open", "data-testid": "conversation-open", tabindex: "-1" },
    h("span", { class: "conv-row" }, title, time),
    h("span", { class: "conv-row conv-row-sub" }, preview, count),
    error,
  );
  const input = h("input", { class: "conv-rename-input", "data-testid": "rename-input", "aria-label": "New title", autocomplete: "off" });
  const edit = h("form", { class: "conv-edit" }, input);
  const rename = h("button", { type: "button", class: "conv-action", "data-testid": "rename-button", tabindex: "-1", html: ICONS.pencil });
  const del = h("button", { type: "button", class: "conv-action conv-action-danger", "data-testid": "delete-button", tabindex: "-1", html: ICONS.trash });
  const li = h(
    "li",
    { class: "conv", "data-testid": "conversation-item", "data-id": id },
    h("span", { class: "conv-spinner", "aria-hidden": "true" }),
    open,
    edit,
    h("span", { class: "conv-actions" }, rename, del),
  );
  li._parts = { title, time, preview, count, error, open, input, edit, rename, del };
  open.addEventListener("click", () => {
    focusId = id;
    store && store.switchConversation(id);
    if (matchMedia("(max-width: 720px)").matches) setCollapsed(true);
  });
  rename.addEventListener("click", () => startRename(id));
  del.addEventListener("click", () => confirmDelete(id));
  edit.addEventListener("submit", (ev) => {
    ev.preventDefault();
    finishRename(id, true);
  });
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") {
      ev.preventDefault();
      finishRename(id, false);
    }
    ev.stopPropagation();
  });
  input.addEventListener("blur", () => finishRename(id, true));
  return li;
}

function updateItem(li, c, st) {
  const p = li._parts;
  const current = c.id === st.currentId;
  const title = titleOf(c);
  if (editingId !== c.id && p.title.textContent !== title) p.title.textContent = title;
  p.title.classList.toggle("untitled", !c.title);
  const when = lastTime(c);
  p.time.textContent = relTime(when);
  p.time.dateTime = when || "";
  p.time.title = fullTime(when);
  const preview = c.last_message_preview || (c._local ? "Not saved yet…" : "No messages yet");
  if (p.preview.textContent !== preview) p.preview.textContent = preview;
  p.preview.classList.toggle("muted", !c.last_message_preview);
  const n = c.message_count || 0;
  p.count.textContent = String(n);
  p.count.title = plural(n, "message");
  p.count.setAttribute("aria-label", plural(n, "message"));
  p.count.hidden = n === 0;
  const err = st.itemErrors[c.id] || "";
  p.error.textContent = err;
  p.error.hidden = !err;
  if (current) li.setAttribute("aria-current", "true");
  else li.removeAttribute("aria-current");
  const loading = Boolean(st.loading[c.id]);
  const unsynced = loading && st.sync.status === "error";
  li.dataset.loading = loading && !unsynced ? "true" : "false";
  if (loading && !unsynced) li.setAttribute("aria-busy", "true");
  else li.removeAttribute("aria-busy");
  li.dataset.sync = unsynced ? "pending" : "ok";
  li.classList.toggle("is-current", current);
  li.classList.toggle("is-local", Boolean(c._local));
  p.open.setAttribute("aria-label", `${title}${current ? " (open)" : ""}, ${plural(n, "message")}`);
  p.rename.setAttribute("aria-label", `Rename “${title}”`);
  p.rename.title = "Rename";
  p.del.setAttribute("aria-label", `Delete “${title}”`);
  p.del.title = "Delete";
}

function renderList(st) {
  const list = $("conversation-list");
  const seen = new Set();
  let prev = null;
  for (const c of st.conversations) {
    let li = itemEls.get(c.id);
    if (!li) {
      li = buildItem(c.id);
      itemEls.set(c.id, li);
    }
    updateItem(li, c, st);
    const expected = prev ? prev.nextSibling : list.firstChild;
    if (expected !== li) list.insertBefore(li, expected);
    prev = li;
    seen.add(c.id);
  }
  for (const [id, li] of itemEls) {
    if (!seen.has(id)) {
      const hadFocus = li.contains(document.activeElement);
      li.remove();
      itemEls.delete(id);
      if (editingId === id) editingId = null;
      if (hadFocus) focusItem(st.currentId || (st.conversations[0] && st.conversations[0].id), false);
    }
  }
  // Roving tabindex: one item in the tab order (the focused one, else the open one).
  if (!focusId || !itemEls.has(focusId)) focusId = st.currentId && itemEls.has(st.currentId) ? st.currentId : st.conversations[0]?.id ?? null;
  for (const [id, li] of itemEls) li._parts.open.tabIndex = id === focusId ? 0 : -1;

  const status = st.list.status;
  $("list-empty").hidden = !(st.conversations.length === 0 && (status === "loaded" || status === "cached"));
  const listError = $("list-error");
  const showErr = status === "error";
  listError.hidden = !showErr;
  if (showErr) listError.textContent = `Couldn't load conversations: ${st.list.error || "unknown error"}`;
  list.classList.toggle("is-loading", status === "loading" && st.conversations.length === 0);
  const more = $("load-more");
  more.hidden = !st.list.nextCursor;
  more.disabled = st.list.loadingMore;
  more.textContent = st.list.loadingMore ? "Loading…" : "Load more";
}

function focusItem(id, scroll = true) {
  const li = id && itemEls.get(id);
  if (!li) return;
  focusId = id;
  for (const [otherId, other] of itemEls) other._parts.open.tabIndex = otherId === id ? 0 : -1;
  li._parts.open.focus({ preventScroll: !scroll });
  if (scroll) li.scrollIntoView({ block: "nearest" });
}

$("conversation-list").addEventListener("keydown", (ev) => {
  const li = ev.target.closest && ev.target.closest(".conv");
  if (!li || !store || ev.target.classList.contains("conv-rename-input")) return;
  const ids = store.getState().conversations.map((c) => c.id);
  const i = ids.indexOf(li.dataset.id);
  let target = null;
  if (ev.key === "ArrowDown") target = ids[Math.min(i + 1, ids.length - 1)];
  else if (ev.key === "ArrowUp") target = ids[Math.max(i - 1, 0)];
  else if (ev.key === "Home") target = ids[0];
  else if (ev.key === "End") target = ids[ids.length - 1];
  else if (ev.key === "F2") {
    ev.preventDefault();
    startRename(li.dataset.id);
    return;
  } else if (ev.key === "Delete") {
    ev.preventDefault();
    confirmDelete(li.dataset.id);
    return;
  } else return;
  ev.preventDefault();
  focusItem(target);
});

function startRename(id) {
  const li = itemEls.get(id);
  const c = store && store.getState().conversations.find((x) => x.id === id);
  if (!li || !c) return;
  if (editingId && editingId !== id) finishRename(editingId, true);
  editingId = id;
  li.classList.add("editing");
  li._parts.input.value = c.title || "";
  li._parts.input.focus();
  li._parts.input.select();
  store.clearItemError(id);
}

function finishRename(id, commit) {
  if (editingId !== id) return;
  editingId = null;
  const li = itemEls.get(id);
  if (!li) return;
  li.classList.remove("editing");
  const value = li._parts.input.value;
  if (li.contains(document.activeElement) || document.activeElement === document.body) li._parts.open.focus({ preventScroll: true });
  if (commit && store) store.renameConversation(id, value);
  if (store) render(store.getState());
}

// ---- delete: confirmation, then an undo window ----------------------------------------
let deleteTarget = null;
function confirmDelete(id) {
  const c = store && store.getState().conversations.find((x) => x.id === id);
  if (!c) return;
  deleteTarget = id;
  $("confirm-title").textContent = `Delete “${titleOf(c)}”?`;
  $("confirm-text").textContent = `${plural(c.message_count || 0, "message")} will be deleted. You can undo for a few seconds.`;
  const dialog = $("confirm-dialog");
  dialog.returnValue = "";
  dialog.showModal();
  dialog.querySelector('[value="cancel"]').focus();
}
$("confirm-dialog").addEventListener("close", () => {
  const dialog = $("confirm-dialog");
  const id = deleteTarget;
  deleteTarget = null;
  if (dialog.returnValue === "delete" && id && store) store.deleteConversation(id);
});

// ---- conversation pane ---------------------------------------------------------------
const messageEls = new Map();
let shownConversation;

function buildMessage(m) {
  const meta = h("div", { class: "msg-meta" });
  const content = h("div", { class: "msg-content", "data-testid": "message-content" });
  const error = h("div", { class: "msg-error", "data-testid": "message-error" });
  const retry = h("button", { type: "button", class: "btn-link msg-retry", "data-testid": "message-retry" }, "Retry");
  const body = h("div", { class: "msg-body" }, meta, content, error, retry);
  const li = h("li", { class: "msg", "data-testid": "message", "data-id": m.id }, body);
  li._parts = { meta, content, error, retry };
  retry.addEventListener("click", () => store && store.retryMessage(li._sessionId, m.id));
  return li;
}

function updateMessage(li, m, sessionId) {
  const p = li._parts;
  li._sessionId = sessionId;
  li.dataset.role = m.role;
  li.dataset.status = m._status || "saved";
  li.className = `msg msg-${m.role}${m._status ? ` msg-${m._status}` : ""}`;
  if (p.content.textContent !== m.content) p.content.textContent = m.content;
  const who = m.role === "user" ? "You" : m.role === "assistant" ? `Assistant${m.model ? ` · ${m.model}` : ""}` : "System";
  const when = m._status === "sending" ? "Sending…" : m._status === "failed" ? "Not sent" : clock(m.created_at);
  p.meta.textContent = `${who} · ${when}`;
  p.meta.title = fullTime(m.created_at);
  const errText = m._status === "failed" ? `Not sent: ${m._error || "error"}` : m.error_message || "";
  p.error.textContent = errText;
  p.error.hidden = !errText;
  p.retry.hidden = m._status !== "failed";
}

function renderPane(st) {
  const conv = st.conversations.find((c) => c.id === st.currentId) || null;
  const box = $("messages");
  const items = $("message-items");
  const switched = shownConversation !== (conv ? conv.id : null);
  if (switched) {
    shownConversation = conv ? conv.id : null;
    items.replaceChildren();
    messageEls.clear();
  }
  $("pane-actions").hidden = !conv;
  $("pane-title").textContent = conv ? titleOf(conv) : "Conversations";
  $("pane-title").classList.toggle("untitled", Boolean(conv && !conv.title));
  const metaParts = [];
  if (conv) {
    metaParts.push(plural(conv.message_count || 0, "message"));
    if (conv.total_tokens) metaParts.push(`${conv.total_tokens.toLocaleString()} tokens`);
    if (conv.last_model) metaParts.push(conv.last_model);
    const t = lastTime(conv);
    if (t) metaParts.push(`active ${relTime(t) === "now" ? "just now" : `${relTime(t)}${/^\d/.test(relTime(t)) ? " ago" : ""}`}`);
  } else if (st.conversations.length) {
    metaParts.push(plural(st.conversations.length, "conversation") + (st.list.nextCursor ? "+" : ""));
  }
  $("pane-meta").textContent = metaParts.join(" · ");

  const bucket = conv ? st.messages[conv.id] : null;
  const list = (bucket && bucket.items) || [];
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  let prev = null;
  const seen = new Set();
  for (const m of list) {
    let li = messageEls.get(m.id);
    if (!li) {
      li = buildMessage(m);
      messageEls.set(m.id, li);
    }
    updateMessage(li, m, conv.id);
    const expected = prev ? prev.nextSibling : items.firstChild;
    if (expected !== li) items.insertBefore(li, expected);
    prev = li;
    seen.add(m.id);
  }
  for (const [id, li] of messageEls) {
    if (!seen.has(id)) {
      li.remove();
      messageEls.delete(id);
    }
  }
  const empty = $("pane-empty");
  if (!conv) {
    empty.hidden = false;
    $("pane-empty-title").textContent = st.conversations.length ? "No conversation open" : "Start your first conversation";
    $("pane-empty-text").textContent = st.conversations.length
      ? "Pick a conversation on the left, or start a new one."
      : "Write a message below and a new conversation begins.";
  } else if (!list.length && bucket && (bucket.loaded || bucket.error)) {
    empty.hidden = false;
    $("pane-empty-title").textContent = "No messages yet";
    $("pane-empty-text").textContent = "Say hello below.";
  } else empty.hidden = true;
  const status = $("messages-status");
  if (bucket && bucket.error) {
    status.hidden = false;
    status.replaceChildren(`Couldn't load messages: ${bucket.error} `, retryLink(() => store.loadMessages(conv.id)));
    status.className = "messages-status is-error";
  } else if (bucket && bucket.loading && !list.length) {
    status.hidden = false;
    status.replaceChildren("Loading messages…");
    status.className = "messages-status";
  } else if (conv && !bucket) {
    status.hidden = false;
    status.replaceChildren("Loading messages…");
    status.className = "messages-status";
  } else status.hidden = true;
  if (switched || nearBottom) box.scrollTop = box.scrollHeight;
  $("composer-input").placeholder = conv ? `Message “${titleOf(conv)}”…` : "Write a message to start a new conversation…";
}

function retryLink(fn) {
  const b = h("button", { type: "button", class: "btn-link" }, "Retry");
  b.addEventListener("click", fn);
  return b;
}

// ---- sync status, notice, toasts -----------------------------------------------------
function renderSync(st) {
  const el = $("sync-status");
  const s = st.sync;
  let text;
  let state = s.status;
  if (s.status === "error") {
    const secs = s.retryAt ? Math.max(0, Math.ceil((s.retryAt - Date.now()) / 1000)) : null;
    text = `Not synced: ${s.reason || "error"}${secs !== null ? ` · retrying in ${secs}s` : ""}`;
  } else if (s.status === "syncing" || st.list.revalidating) {
    state = "syncing";
    text = st.list.fromCache ? "Showing saved copy · syncing…" : "Syncing…";
  } else if (s.status === "synced") text = "All changes synced";
  else text = "Connecting…";
  el.dataset.state = state;
  if ($("sync-text").textContent !== text) $("sync-text").textContent = text;
  el.title = s.status === "error" ? "Your choice is kept on this device and will be sent when the server answers." : "";
  $("sync-retry").hidden = s.status !== "error";
}

function renderNotice(st) {
  const n = st.notice;
  $("notice").hidden = !n;
  $("notice-text").textContent = n ? n.message : "";
}

const toastEls = new Map();
function toast(key, build) {
  let el = toastEls.get(key);
  if (!el) {
    el = build();
    toastEls.set(key, el);
    $("toasts").append(el);
  }
  return el;
}

function renderToasts(st) {
  const keep = new Set();
  for (const p of st.pendingDeletes) {
    const key = `delete:${p.id}`;
    keep.add(key);
    toast(key, () => {
      const undo = h("button", { type: "button", class: "btn-link toast-action", "data-testid": "undo-button" }, "Undo");
      const close = h("button", { type: "button", class: "toast-close", "data-testid": "toast-dismiss", "aria-label": "Delete now" }, "×");
      undo.addEventListener("click", () => store && store.undoDelete(p.id));
      close.addEventListener("click", () => store && store.commitDelete(p.id));
      return h("div", { class: "toast", "data-testid": "undo-toast", "data-id": p.id, role: "status" }, h("span", {}, `Deleted “${p.title || "New conversation"}”.`), undo, close);
    });
  }
  const e = st.lastError;
  if (e && e.op !== "switch" && e.op !== "load") {
    const key = `error:${e.at}`;
    keep.add(key);
    toast(key, () => {
      const close = h("button", { type: "button", class: "toast-close", "aria-label": "Dismiss" }, "×");
      close.addEventListener("click", () => store && store.dismissError());
      setTimeout(() => {
        if (store && store.getState().lastError === e) store.dismissError();
      }, 8000);
      return h("div", { class: "toast toast-error", "data-testid": "error-toast", role: "alert" }, h("span", {}, e.message), close);
    });
  }
  for (const [key, el] of toastEls) {
    if (!keep.has(key)) {
      el.remove();
      toastEls.delete(key);
    }
  }
}

function render(st) {
  if (!store) return;
  renderList(st);
  renderPane(st);
  renderSync(st);
  renderNotice(st);
  renderToasts(st);
}

// ---- wiring ------------------------------------------------------------------------
$("new-conversation").addEventListener("click", () => {
  if (!store) return;
  store.createConversation();
  $("composer-input").focus();
});
$("load-more").addEventListener("click", () => store && store.loadMore());
$("sync-retry").addEventListener("click", () => store && store.retrySync());
$("notice-dismiss").addEventListener("click", () => store && store.dismissNotice());
$("sign-out").addEventListener("click", signOut);
$("device-mode").addEventListener("change", (ev) => {
  const on = ev.target.checked;
  storage.setItem(KEYS.deviceMode, on ? "1" : "0");
  if (store) store.setScope(on ? deviceScope() : null);
});
$("pane-rename").addEventListener("click", () => {
  const id = store && store.getState().currentId;
  if (!id) return;
  setCollapsed(false);
  itemEls.get(id)?.scrollIntoView({ block: "nearest" });
  startRename(id);
});
$("pane-delete").addEventListener("click", () => {
  const id = store && store.getState().currentId;
  if (id) confirmDelete(id);
});

const input = $("composer-input");
function autosize() {
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 200)}px`;
}
input.addEventListener("input", autosize);
input.addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    $("composer").requestSubmit();
  }
});
$("composer").addEventListener("submit", (ev) => {
  ev.preventDefault();
  if (!store) return;
  const text = input.value.trim();
  if (!text) return;
  store.sendMessage(text);
  input.value = "";
  autosize();
  input.focus();
});

function setCollapsed(collapsed) {
  document.querySelector(".sidebar").classList.toggle("collapsed", collapsed);
  $("collapse-toggle").setAttribute("aria-expanded", String(!collapsed));
}
$("collapse-toggle").addEventListener("click", () => {
  setCollapsed(!document.querySelector(".sidebar").classList.contains("collapsed"));
});

document.addEventListener("keydown", (ev) => {
  if (ev.altKey && (ev.key === "n" || ev.key === "N") && store) {
    ev.preventDefault();
    $("new-conversation").click();
  }
});

// Deletes inside their undo window are sent before the page goes away.
window.addEventListener("pagehide", () => store && store.flushDeletes());
window.addEventListener("online", () => store && store.retrySync());
let lastRevalidate = 0;
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && store && Date.now() - lastRevalidate > 30000) {
    lastRevalidate = Date.now();
    store.revalidate();
  }
});
// Keep relative times and the retry countdown fresh.
let ticks = 0;
setInterval(() => {
  if (!store) return;
  ticks += 1;
  const st = store.getState();
  if (ticks % 30 === 0) render(st);
  else if (st.sync.retryAt) renderSync(st);
}, 1000);

// A token handed later through the fragment (same-page navigation) is taken up too.
window.addEventListener("hashchange", () => {
  if (!new URLSearchParams(location.hash.slice(1)).get("access_token")) return;
  const handed = takeToken();
  if (handed && handed !== token) startApp(handed);
});

// ---- boot --------------------------------------------------------------------------
const initial = takeToken();
if (initial) startApp(initial);
else showSignIn();
