// api.js: a thin client for the chatsessions HTTP API.
// No DOM access: fetch, the token and the timers are injected, so it runs in tests
// with a fake fetch. Every failure becomes an ApiError with a status (0 for network
// failures), the server's stable error code and its message.

export class ApiError extends Error {
  constructor(message, { status = 0, code = "network_error", network = false } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.network = network;
  }
}

// Worth retrying later: the network, a timeout, rate limiting or a server-side failure.
export function isRetriable(err) {
  if (!(err instanceof ApiError)) return true;
  return err.network || err.status === 0 || err.status === 408 || err.status === 429 || err.status >= 500;
}

function queryString(query) {
  const parts = [];
  for (const [key, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === "") continue;
    parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(value)}`);
  }
  return parts.length ? `?${parts.join("&")}` : "";
}

function withoutUndefined(obj) {
  const out = {};
  for (const [key, value] of Object.entries(obj)) if (value !== undefined) out[key] = value;
  return out;
}

export function createApi({
  fetch: fetchImpl = (...args) => globalThis.fetch(...args),
  baseUrl = "",
  getToken = () => null,
  timeoutMs = 20000,
  timers = { setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms), clearTimeout: (h) => globalThis.clearTimeout(h) },
} = {}) {
  async function request(method, path, { query, body, auth = true, keepalive = false } = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const token = auth ? getToken() : null;
    if (token) headers.Authorization = `Bearer ${token}`;
    const init = { method, headers };
    if (body !== undefined) init.body = JSON.stringify(body);
    if (keepalive) init.keepalive = true;

    let controller = null;
    let timer = null;
    let timedOut = false;
    if (timeoutMs > 0 && typeof AbortController !== "undefined") {
      controller = new AbortController();
      init.signal = controller.signal;
      timer = timers.setTimeout(() => {
        timedOut = true;
        controller.abort();
      }, timeoutMs);
    }
    let response;
    let text = "";
    try {
      response = await fetchImpl(baseUrl + path + queryString(query), init);
      text = await response.text();
    } catch (err) {
      const message = timedOut ? "The server did not answer in time" : "Could not reach the server";
      throw new ApiError(message, { status: 0, code: timedOut ? "timeout" : "network_error", network: true });
    } finally {
      if (timer !== null) timers.clearTimeout(timer);
    }
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!response.ok) {
      const message = (data && typeof data.error === "string" && data.error) || `HTTP ${response.status}`;
      const code = (data && typeof data.code === "string" && data.code) || `http_${response.status}`;
      throw new ApiError(message, { status: response.status, code });
    }
    return data;
  }

  return {
    request,
    authConfig: () => request("GET", "/api/auth/config", { auth: false }),
    devToken: (name) => request("POST", "/api/dev/token", { body: { name }, auth: false }),
    listSessions: ({ limit, cursor, scope } = {}) =>
      request("GET", "/api/chat/sessions", { query: { limit, cursor, scope } }),
    getSession: ({ id, scope }) => request("GET", "/api/chat/session", { query: { id, scope } }),
    // Rename (title) and/or switch (is_active) one session.
    updateSession: ({ id, title, is_active, scope }) =>
      request("POST", "/api/chat/session", { body: withoutUndefined({ id, title, is_active, scope }) }),
    createSession: ({ id, title, is_active, scope }) =>
      request("POST", "/api/chat/sessions", { body: withoutUndefined({ id, title, is_active, scope }) }),
    deleteSession: ({ id, keepalive = false }) =>
      request("DELETE", "/api/chat/sessions", { query: { id }, keepalive }),
    listMessages: ({ session_id, after, limit }) =>
      request("GET", "/api/chat/messages", { query: { session_id, after, limit } }),
    appendMessages: ({ session_id, message, messages }) =>
      request("POST", "/api/chat/messages", { body: withoutUndefined({ session_id, message, messages }) }),
  };
}
