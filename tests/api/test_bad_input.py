"""Bad input: always a 4xx JSON error {"error", "code"} with a stable code, never a 5xx, and no
change to any data."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

LIMIT = 64 * 1024  # the test settings' max_body_bytes
ID_128 = "i" * 128
SCOPES = ("account", "phone")


@dataclass
class Case:
    name: str
    method: str
    path: str
    kwargs: dict[str, Any] | Callable[[], dict[str, Any]] = field(default_factory=dict)
    status: int = 400
    code: str | None = "invalid_request"  # None: any non-empty code

    def request_kwargs(self) -> dict[str, Any]:
        return self.kwargs() if callable(self.kwargs) else dict(self.kwargs)


def raw(body: bytes, content_type: str = "application/json") -> dict[str, Any]:
    return {"content": body, "headers": {"content-type": content_type}}


def streamed(body: bytes) -> Callable[[], dict[str, Any]]:
    """A body sent in chunks, without Content-Length (Transfer-Encoding: chunked)."""

    def make() -> dict[str, Any]:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(0, len(body), 8192):
                yield body[i : i + 8192]

        return {"content": chunks(), "headers": {"content-type": "application/json"}}

    return make


def cursor_of(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def message(**fields: Any) -> dict[str, Any]:
    return {"role": "user", "content": "hello", **fields}


def append_one(**fields: Any) -> dict[str, Any]:
    return {"json": {"session_id": "s1", "message": message(**fields)}}


POST_ROUTES = ("/api/chat/session", "/api/chat/sessions", "/api/chat/messages")

CASES: list[Case] = []

# --- body syntax and shape, on every route that takes a body --------------------------------
for path in (*POST_ROUTES, "/api/dev/token"):
    CASES += [
        Case(f"malformed json {path}", "POST", path, raw(b'{"id": "s1", "title": ')),
        Case(f"trailing garbage {path}", "POST", path, raw(b'{"id": "s1"} x')),
        Case(f"not utf-8 {path}", "POST", path, raw(b'{"id": "\xff\xfe"}'), code=None),
        Case(f"empty body {path}", "POST", path, raw(b"")),
        Case(f"body is an array {path}", "POST", path, {"json": [{"id": "s1"}]}),
        Case(f"body is a string {path}", "POST", path, {"json": "s1"}),
        Case(f"body is a number {path}", "POST", path, {"json": 7}),
        Case(f"body is null {path}", "POST", path, raw(b"null")),
        Case(f"body is true {path}", "POST", path, raw(b"true")),
        Case(f"text/plain body {path}", "POST", path, raw(b'{"id": "s1"}', "text/plain")),
    ]

# --- oversized bodies ----------------------------------------------------------------------
big_title = json.dumps({"id": "s1", "title": "x" * (LIMIT + 10)}).encode()
big_create = json.dumps({"id": "big", "title": "x" * (LIMIT + 10)}).encode()
big_message = json.dumps(
    {"session_id": "s1", "message": message(content="x" * (LIMIT + 10))}
).encode()
for path, body in (
    ("/api/chat/session", big_title),
    ("/api/chat/sessions", big_create),
    ("/api/chat/messages", big_message),
):
    CASES += [
        Case(f"oversized {path}", "POST", path, raw(body), 413, "payload_too_large"),
        Case(f"oversized streamed {path}", "POST", path, streamed(body), 413, "payload_too_large"),
    ]
CASES.append(
    Case(
        "oversized garbage",
        "POST",
        "/api/chat/messages",
        raw(b"\x00" * (LIMIT + 1), "application/octet-stream"),
        413,
        "payload_too_large",
    )
)

# --- POST /api/chat/session -----------------------------------------------------------------
U = "/api/chat/session"
CASES += [
    Case("update: no id", "POST", U, {"json": {"title": "x"}}),
    Case("update: empty object", "POST", U, {"json": {}}),
    Case("update: id empty", "POST", U, {"json": {"id": "", "title": "x"}}),
    Case("update: id null", "POST", U, {"json": {"id": None, "title": "x"}}),
    Case("update: id number", "POST", U, {"json": {"id": 7, "title": "x"}}),
    Case("update: id with space", "POST", U, {"json": {"id": "s 1", "title": "x"}}),
    Case("update: id with slash", "POST", U, {"json": {"id": "s1/..", "title": "x"}}),
    Case("update: id non-ascii", "POST", U, {"json": {"id": "sä", "title": "x"}}),
    Case("update: id newline", "POST", U, {"json": {"id": "s1\n", "title": "x"}}),
    Case("update: id NUL", "POST", U, {"json": {"id": "s1\x00", "title": "x"}}),
    Case("update: id 129", "POST", U, {"json": {"id": ID_128 + "i", "title": "x"}}),
    Case("update: is_active 'yes'", "POST", U, {"json": {"id": "s2", "is_active": "yes"}}),
    Case("update: is_active 'true'", "POST", U, {"json": {"id": "s2", "is_active": "true"}}),
    Case("update: is_active 1", "POST", U, {"json": {"id": "s2", "is_active": 1}}),
    Case("update: title number", "POST", U, {"json": {"id": "s1", "title": 5}}),
    Case("update: title list", "POST", U, {"json": {"id": "s1", "title": ["x"]}}),
    Case("update: title 256", "POST", U, {"json": {"id": "s1", "title": "t" * 256}}),
    Case("update: title empty", "POST", U, {"json": {"id": "s1", "title": ""}}),
    Case("update: title blank", "POST", U, {"json": {"id": "s1", "title": "   "}}),
    Case("update: title whitespace", "POST", U, {"json": {"id": "s1", "title": "\t\n \u3000"}}),
    Case("update: title NUL", "POST", U, {"json": {"id": "s1", "title": "a\x00b"}}),
    Case("update: title lone surrogate", "POST", U, raw(b'{"id": "s1", "title": "a\\ud800"}')),
    Case("update: unknown field", "POST", U, {"json": {"id": "s1", "titel": "x"}}),
    Case("update: scope empty", "POST", U, {"json": {"id": "s2", "is_active": True, "scope": ""}}),
    Case("update: scope number", "POST", U, {"json": {"id": "s2", "is_active": True, "scope": 5}}),
    Case(
        "update: scope with space",
        "POST",
        U,
        {"json": {"id": "s2", "is_active": True, "scope": "my phone"}},
    ),
    Case(
        "update: scope leading dash",
        "POST",
        U,
        {"json": {"id": "s2", "is_active": True, "scope": "-phone"}},
    ),
    Case(
        "update: scope 65",
        "POST",
        U,
        {"json": {"id": "s2", "is_active": True, "scope": "p" * 65}},
    ),
]

# --- POST /api/chat/sessions ----------------------------------------------------------------
C = "/api/chat/sessions"
CASES += [
    Case("create: id empty", "POST", C, {"json": {"id": ""}}),
    Case("create: id number", "POST", C, {"json": {"id": 7}}),
    Case("create: id with space", "POST", C, {"json": {"id": "new one"}}),
    Case("create: id non-ascii", "POST", C, {"json": {"id": "neü"}}),
    Case("create: id NUL", "POST", C, {"json": {"id": "new\x00"}}),
    Case("create: id 129", "POST", C, {"json": {"id": ID_128 + "i"}}),
    Case("create: is_active 'yes'", "POST", C, {"json": {"id": "new", "is_active": "yes"}}),
    Case("create: is_active null", "POST", C, {"json": {"id": "new", "is_active": None}}),
    Case("create: title number", "POST", C, {"json": {"id": "new", "title": 5}}),
    Case("create: title 256", "POST", C, {"json": {"id": "new", "title": "t" * 256}}),
    Case("create: title blank", "POST", C, {"json": {"id": "new", "title": "  "}}),
    Case("create: title NUL", "POST", C, {"json": {"id": "new", "title": "\x00"}}),
    Case("create: unknown field", "POST", C, {"json": {"id": "new", "bogus": 1}}),
    Case("create: stats field", "POST", C, {"json": {"id": "new", "message_count": 3}}),
    Case("create: scope invalid", "POST", C, {"json": {"id": "new", "scope": "a/b"}}),
    Case(
        "create active: scope invalid",
        "POST",
        C,
        {"json": {"id": "new", "is_active": True, "scope": "é"}},
    ),
]

# --- GET /api/chat/session, GET and DELETE /api/chat/sessions ---------------------------------
CASES += [
    Case("get: no id", "GET", U),
    Case("get: id empty", "GET", U, {"params": {"id": ""}}),
    Case("get: id invalid", "GET", U, {"params": {"id": "s1;drop"}}),
    Case("get: id NUL", "GET", U, {"params": {"id": "s1\x00"}}),
    Case("get: id 129", "GET", U, {"params": {"id": ID_128 + "i"}}),
    Case("get: scope empty", "GET", U, {"params": {"id": "s1", "scope": ""}}),
    Case("get: scope invalid", "GET", U, {"params": {"id": "s1", "scope": "a b"}}),
    Case("get: scope 65", "GET", U, {"params": {"id": "s1", "scope": "p" * 65}}),
    Case("delete: no id", "DELETE", C),
    Case("delete: id empty", "DELETE", C, {"params": {"id": ""}}),
    Case("delete: id invalid", "DELETE", C, {"params": {"id": "s1 "}}),
    Case("delete: id 129", "DELETE", C, {"params": {"id": ID_128 + "i"}}),
    Case("list: limit 0", "GET", C, {"params": {"limit": 0}}),
    Case("list: limit -1", "GET", C, {"params": {"limit": -1}}),
    Case("list: limit 201", "GET", C, {"params": {"limit": 201}}),
    Case("list: limit huge", "GET", C, {"params": {"limit": 10**30}}),
    Case("list: limit text", "GET", C, {"params": {"limit": "ten"}}),
    Case("list: limit float", "GET", C, {"params": {"limit": "1.5"}}),
    Case("list: scope invalid", "GET", C, {"params": {"scope": "-x"}}),
    Case("list: scope NUL", "GET", C, {"params": {"scope": "a\x00"}}),
    Case(
        "list: cursor garbage",
        "GET",
        C,
        {"params": {"cursor": "!!!not a cursor!!!"}},
        400,
        "invalid_cursor",
    ),
    Case(
        "list: cursor not json", "GET", C, {"params": {"cursor": "aGVsbG8"}}, 400, "invalid_cursor"
    ),
    Case(
        "list: cursor wrong shape",
        "GET",
        C,
        {"params": {"cursor": cursor_of({"a": 1})}},
        400,
        "invalid_cursor",
    ),
    Case(
        "list: cursor one element",
        "GET",
        C,
        {"params": {"cursor": cursor_of(["x"])}},
        400,
        "invalid_cursor",
    ),
    Case(
        "list: cursor three elements",
        "GET",
        C,
        {"params": {"cursor": cursor_of(["2024-01-01T00:00:00+00:00", "a", 1])}},
        400,
        "invalid_cursor",
    ),
    Case(
        "list: cursor number id",
        "GET",
        C,
        {"params": {"cursor": cursor_of(["2024-01-01T00:00:00+00:00", 5])}},
        400,
        "invalid_cursor",
    ),
    Case(
        "list: cursor naive time",
        "GET",
        C,
        {"params": {"cursor": cursor_of(["2024-01-01T00:00:00", "a"])}},
        400,
        "invalid_cursor",
    ),
    Case(
        "list: cursor bad time",
        "GET",
        C,
        {"params": {"cursor": cursor_of(["yesterday", "a"])}},
        400,
        "invalid_cursor",
    ),
    Case(
        "list: cursor null time",
        "GET",
        C,
        {"params": {"cursor": cursor_of([None, "a"])}},
        400,
        "invalid_cursor",
    ),
    Case("list: cursor 513", "GET", C, {"params": {"cursor": "A" * 513}}),
]

# --- GET /api/chat/messages -----------------------------------------------------------------
M = "/api/chat/messages"
CASES += [
    Case("messages: no session_id", "GET", M),
    Case("messages: session_id invalid", "GET", M, {"params": {"session_id": "s 1"}}),
    Case("messages: after -1", "GET", M, {"params": {"session_id": "s1", "after": -1}}),
    Case("messages: after text", "GET", M, {"params": {"session_id": "s1", "after": "x"}}),
    Case("messages: after over int64", "GET", M, {"params": {"session_id": "s1", "after": 2**63}}),
    Case("messages: limit 0", "GET", M, {"params": {"session_id": "s1", "limit": 0}}),
    Case("messages: limit 501", "GET", M, {"params": {"session_id": "s1", "limit": 501}}),
    Case("messages: limit text", "GET", M, {"params": {"session_id": "s1", "limit": "all"}}),
]

# --- POST /api/chat/messages ----------------------------------------------------------------
CASES += [
    Case("append: neither message nor messages", "POST", M, {"json": {"session_id": "s1"}}),
    Case(
        "append: both",
        "POST",
        M,
        {"json": {"session_id": "s1", "message": message(), "messages": [message()]}},
    ),
    Case(
        "append: both null",
        "POST",
        M,
        {"json": {"session_id": "s1", "message": None, "messages": None}},
    ),
    Case("append: messages empty", "POST", M, {"json": {"session_id": "s1", "messages": []}}),
    Case(
        "append: messages 1001",
        "POST",
        M,
        {"json": {"session_id": "s1", "messages": [{"role": "user", "content": ""}] * 1001}},
    ),
    Case(
        "append: messages object", "POST", M, {"json": {"session_id": "s1", "messages": message()}}
    ),
    Case("append: message list", "POST", M, {"json": {"session_id": "s1", "message": [message()]}}),
    Case("append: message string", "POST", M, {"json": {"session_id": "s1", "message": "hi"}}),
    Case("append: no session_id", "POST", M, {"json": {"message": message()}}),
    Case("append: session_id empty", "POST", M, {"json": {"session_id": "", "message": message()}}),
    Case("append: session_id number", "POST", M, {"json": {"session_id": 1, "message": message()}}),
    Case(
        "append: session_id invalid",
        "POST",
        M,
        {"json": {"session_id": "s1?", "message": message()}},
    ),
    Case(
        "append: unknown top-level field",
        "POST",
        M,
        {"json": {"session_id": "s1", "message": message(), "x": 1}},
    ),
    Case("append: unknown message field", "POST", M, append_one(timestamp="2024-01-01T00:00:00Z")),
    Case(
        "append: scope invalid",
        "POST",
        M,
        {"json": {"session_id": "s1", "message": message(), "scope": "a b"}},
    ),
    Case("append: role tool", "POST", M, append_one(role="tool")),
    Case("append: role upper", "POST", M, append_one(role="USER")),
    Case("append: role empty", "POST", M, append_one(role="")),
    Case("append: role null", "POST", M, append_one(role=None)),
    Case(
        "append: role missing",
        "POST",
        M,
        {"json": {"session_id": "s1", "message": {"content": "x"}}},
    ),
    Case(
        "append: content missing",
        "POST",
        M,
        {"json": {"session_id": "s1", "message": {"role": "user"}}},
    ),
    Case("append: content null", "POST", M, append_one(content=None)),
    Case("append: content number", "POST", M, append_one(content=5)),
    Case("append: content NUL", "POST", M, append_one(content="a\x00b")),
    Case(
        "append: content lone surrogate",
        "POST",
        M,
        raw(b'{"session_id": "s1", "message": {"role": "user", "content": "\\udc00"}}'),
        code=None,
    ),
    Case("append: model NUL", "POST", M, append_one(model="gpt\x00")),
    Case("append: model 256", "POST", M, append_one(model="m" * 256)),
    Case("append: model number", "POST", M, append_one(model=4)),
    Case("append: error_message NUL", "POST", M, append_one(error_message="\x00")),
    Case("append: id NUL", "POST", M, append_one(id="m\x00")),
    Case("append: id empty", "POST", M, append_one(id="")),
    Case("append: id invalid", "POST", M, append_one(id="m 1")),
    Case("append: id 129", "POST", M, append_one(id=ID_128 + "i")),
    Case("append: id number", "POST", M, append_one(id=12)),
    Case("append: input_tokens negative", "POST", M, append_one(input_tokens=-1)),
    Case("append: output_tokens negative", "POST", M, append_one(output_tokens=-5)),
    Case("append: total_tokens negative", "POST", M, append_one(total_tokens=-1)),
    Case("append: tokens over int32", "POST", M, append_one(total_tokens=2**31)),
    Case("append: tokens string", "POST", M, append_one(input_tokens="5")),
    Case("append: tokens float", "POST", M, append_one(input_tokens=1.5)),
    Case("append: tokens bool", "POST", M, append_one(output_tokens=True)),
    Case("append: metadata list", "POST", M, append_one(metadata=[1, 2])),
    Case("append: metadata string", "POST", M, append_one(metadata="{}")),
    Case("append: metadata key NUL", "POST", M, append_one(metadata={"k\x00": "v"})),
    Case("append: metadata value NUL", "POST", M, append_one(metadata={"k": "v\x00"})),
    Case("append: metadata nested NUL", "POST", M, append_one(metadata={"a": [{"b": ["\x00"]}]})),
    Case("append: metadata nested key NUL", "POST", M, append_one(metadata={"a": {"\x00": 1}})),
    Case(
        "append: metadata NaN",
        "POST",
        M,
        raw(
            b'{"session_id": "s1", "message":'
            b' {"role": "user", "content": "x", "metadata": {"n": NaN}}}'
        ),
        code=None,
    ),
    Case(
        "append: metadata nested 300 deep",
        "POST",
        M,
        raw(
            b'{"session_id": "s1", "message": {"role": "user", "content": "x", "metadata": {"k": '
            + b"[" * 300
            + b"]" * 300
            + b"}}}"
        ),
        code=None,
    ),
    Case(
        "append: metadata nested 5000 deep",
        "POST",
        M,
        raw(
            b'{"session_id": "s1", "message": {"role": "user", "content": "x", "metadata": {"k": '
            + b"[" * 5000
            + b"]" * 5000
            + b"}}}"
        ),
        code=None,
    ),
    Case(
        "append: one bad message spoils the batch",
        "POST",
        M,
        {"json": {"session_id": "s1", "messages": [message(), message(role="robot")]}},
    ),
]

# --- dev sign-in ----------------------------------------------------------------------------
T = "/api/dev/token"
CASES += [
    Case("token: no name", "POST", T, {"json": {}}),
    Case("token: name empty", "POST", T, {"json": {"name": ""}}),
    Case("token: name blank", "POST", T, {"json": {"name": "   "}}),
    Case("token: name NUL", "POST", T, {"json": {"name": "a\x00"}}),
    Case("token: name 65", "POST", T, {"json": {"name": "n" * 65}}),
    Case("token: name number", "POST", T, {"json": {"name": 5}}),
    Case("token: unknown field", "POST", T, {"json": {"name": "a", "password": "x"}}),
]

# --- unknown routes and wrong methods -------------------------------------------------------
for method, path in (
    ("GET", "/api/nope"),
    ("POST", "/api/nope"),
    ("PUT", "/api/nope"),
    ("DELETE", "/api/chat/nope"),
    ("GET", "/api/chat/sessions/s1"),
    ("POST", "/api/chat/session/s1"),
    ("GET", "/api"),
    ("GET", "/api/chat"),
):
    CASES.append(Case(f"unknown route {method} {path}", method, path, {}, 404, "not_found"))
for method, path in (
    ("PUT", "/api/chat/session"),
    ("DELETE", "/api/chat/session"),
    ("PATCH", "/api/chat/session"),
    ("PUT", "/api/chat/sessions"),
    ("PATCH", "/api/chat/sessions"),
    ("PUT", "/api/chat/messages"),
    ("DELETE", "/api/chat/messages"),
    ("POST", "/healthz"),
    ("DELETE", "/readyz"),
    ("GET", "/api/dev/token"),
    ("POST", "/api/auth/config"),
):
    CASES.append(Case(f"wrong method {method} {path}", method, path, {}, 405, "method_not_allowed"))


@pytest.fixture
async def victim(app: Any, authority: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A user with data; a client that reports the app's own failures as responses (500)."""
    token = authority.issue(uuid.uuid4())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://test",
        headers={"Authorization": f"Bearer {token}"},
    ) as c:
        for body in (
            {"id": "s1", "title": "Original", "is_active": True},
            {"id": "s2", "title": "Second"},
        ):
            assert (await c.post("/api/chat/sessions", json=body)).status_code == 201
        r = await c.post(
            "/api/chat/session", json={"id": "s2", "is_active": True, "scope": "phone"}
        )
        assert r.status_code == 200
        r = await c.post(
            "/api/chat/messages",
            json={
                "session_id": "s1",
                "messages": [
                    {"id": "m1", "role": "user", "content": "q", "input_tokens": 2},
                    {
                        "id": "m2",
                        "role": "assistant",
                        "content": "a",
                        "model": "m",
                        "output_tokens": 3,
                    },
                ],
            },
        )
        assert r.status_code == 201
        yield c


async def snapshot(c: httpx.AsyncClient) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for scope in SCOPES:
        r = await c.get("/api/chat/sessions", params={"scope": scope, "limit": 200})
        assert r.status_code == 200, r.text
        state[f"listing:{scope}"] = r.json()
    for s in state["listing:account"]["sessions"]:
        r = await c.get("/api/chat/messages", params={"session_id": s["id"], "limit": 500})
        assert r.status_code == 200, r.text
        state[f"messages:{s['id']}"] = r.json()
    return state


def assert_error(r: httpx.Response, status: int, code: str | None) -> None:
    assert r.status_code < 500, f"server error {r.status_code}: {r.text[:300]}"
    assert r.status_code == status, r.text[:300]
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error", "code"}, body
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["code"], str) and body["code"]
    if code is not None:
        assert body["code"] == code, body


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_bad_input(victim: httpx.AsyncClient, case: Case) -> None:
    before = await snapshot(victim)
    r = await victim.request(case.method, case.path, **case.request_kwargs())
    assert_error(r, case.status, case.code)
    assert await snapshot(victim) == before


async def test_bad_input_without_a_token_is_still_json(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/chat/session", content=b"{", headers={"content-type": "application/json"}
    )
    assert 400 <= r.status_code < 500
    assert set(r.json()) == {"error", "code"}


@pytest.mark.parametrize(
    ("method", "path"), [("PUT", "/api/chat/session"), ("DELETE", "/api/chat/session")]
)
async def test_method_not_allowed_names_the_allowed_methods(
    victim: httpx.AsyncClient, method: str, path: str
) -> None:
    """RFC 9110 §15.5.6: a 405 response MUST carry an Allow header."""
    r = await victim.request(method, path)
    assert r.status_code == 405
    allowed = {m.strip() for m in r.headers.get("allow", "").split(",") if m.strip()}
    assert {"GET", "POST"} <= allowed, r.headers


async def test_cursor_outside_the_date_range_is_an_invalid_cursor(
    victim: httpx.AsyncClient,
) -> None:
    """A cursor the server never issued, decoding to a time a database cannot take, is just an
    invalid cursor (not a driver message about query arguments)."""
    for at in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"):
        r = await victim.get("/api/chat/sessions", params={"cursor": cursor_of([at, "s1"])})
        assert_error(r, 400, "invalid_cursor")


# --- the limits themselves are allowed ------------------------------------------------------


async def test_limits_are_inclusive(victim: httpx.AsyncClient) -> None:
    c = victim
    r = await c.post("/api/chat/sessions", json={"id": ID_128, "title": "t" * 255})
    assert r.status_code == 201, r.text
    assert r.json()["session"]["title"] == "t" * 255
    r = await c.post(
        "/api/chat/session", json={"id": ID_128, "title": "é" * 255, "scope": "p" * 64}
    )
    assert r.status_code == 200, r.text
    r = await c.get("/api/chat/session", params={"id": ID_128, "scope": "p" * 64})
    assert r.status_code == 200 and r.json()["session"]["title"] == "é" * 255
    r = await c.post("/api/chat/sessions", json={"id": "A.b_c:d~e-9"})
    assert r.status_code == 201, r.text
    r = await c.post(
        "/api/chat/messages",
        json={
            "session_id": ID_128,
            "message": message(
                id=ID_128,
                model="m" * 255,
                input_tokens=2**31 - 1,
                output_tokens=0,
                metadata={"deep": [[[{"ok": True}]]]},
            ),
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["session"]["total_tokens"] == 2**31 - 1
    r = await c.get("/api/chat/sessions", params={"limit": 200})
    assert r.status_code == 200
    r = await c.get("/api/chat/sessions", params={"limit": 1})
    assert r.status_code == 200
    r = await c.get("/api/chat/messages", params={"session_id": "s1", "limit": 500, "after": 0})
    assert r.status_code == 200
    r = await c.get("/api/chat/messages", params={"session_id": "s1", "limit": 1})
    assert r.status_code == 200 and r.json()["next_after"] == 1


async def test_body_just_under_the_limit_is_accepted(victim: httpx.AsyncClient) -> None:
    body = json.dumps({"session_id": "s1", "message": message(content="")}).encode()
    content = "x" * (LIMIT - len(body))
    body = json.dumps({"session_id": "s1", "message": message(content=content)}).encode()
    assert len(body) == LIMIT
    for kwargs in (raw(body), streamed(body)()):
        r = await victim.post("/api/chat/messages", **kwargs)
        assert r.status_code == 201, r.text[:300]
        assert r.json()["messages"][0]["content"] == content


async def test_batch_of_1000_is_accepted(victim: httpx.AsyncClient) -> None:
    r = await victim.post(
        "/api/chat/messages",
        json={"session_id": "s2", "messages": [{"role": "user", "content": ""}] * 1000},
    )
    assert r.status_code == 201, r.text[:300]
    assert r.json()["session"]["message_count"] == 1000
