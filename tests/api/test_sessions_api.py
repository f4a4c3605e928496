"""Sessions through the HTTP API: the plan's six success criteria and the rest of the contract.

1. switching works; 2. the backend's is_active is right (GET session and the listing agree);
3. only one session is ever active; 4. a switch moves no timestamp of any session (a rename does,
a no-op rename does not); 5. titles are editable; 6. title + is_active apply atomically, and a
failing combined request changes nothing.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import asyncpg
import httpx

SESSION_FIELDS = {
    "id",
    "user_id",
    "title",
    "created_at",
    "updated_at",
    "last_activity",
    "message_count",
    "total_tokens",
    "last_model",
    "last_message_preview",
    "last_message_timestamp",
    "is_active",
}
TIMESTAMPS = ("created_at", "updated_at", "last_activity", "last_message_timestamp")


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def create(c: httpx.AsyncClient, sid: str, **fields: Any) -> dict[str, Any]:
    r = await c.post("/api/chat/sessions", json={"id": sid, **fields})
    assert r.status_code == 201, r.text
    return r.json()["session"]


async def update(c: httpx.AsyncClient, sid: str, **fields: Any) -> dict[str, Any]:
    r = await c.post("/api/chat/session", json={"id": sid, **fields})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True
    return body["session"]


async def get(c: httpx.AsyncClient, sid: str, scope: str | None = None) -> dict[str, Any]:
    params = {"id": sid} if scope is None else {"id": sid, "scope": scope}
    r = await c.get("/api/chat/session", params=params)
    assert r.status_code == 200, r.text
    return r.json()["session"]


async def listing(c: httpx.AsyncClient, scope: str | None = None, **params: Any) -> dict[str, Any]:
    if scope is not None:
        params["scope"] = scope
    r = await c.get("/api/chat/sessions", params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def append(c: httpx.AsyncClient, sid: str, content: str = "hello") -> dict[str, Any]:
    r = await c.post(
        "/api/chat/messages",
        json={"session_id": sid, "message": {"role": "user", "content": content}},
    )
    assert r.status_code == 201, r.text
    return r.json()


async def assert_single_active(
    c: httpx.AsyncClient, expected: str | None, scope: str | None = None
):
    """The listing, its active_session_id and GET of every session all agree on `expected`."""
    page = await listing(c, scope, limit=200)
    assert page["active_session_id"] == expected
    flagged = [s["id"] for s in page["sessions"] if s["is_active"]]
    assert flagged == ([] if expected is None else [expected])
    for s in page["sessions"]:
        assert (await get(c, s["id"], scope))["is_active"] is (s["id"] == expected)


def stamps(sessions: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    return {s["id"]: tuple(s[k] for k in TIMESTAMPS) for s in sessions}


# --- 1, 2, 3: switching, is_active in GET and the listing, only one active -----------------


async def test_session_shape(make_user) -> None:
    u = await make_user()
    s = await create(u.client, "shape", title="Shape")
    assert set(s) == SESSION_FIELDS
    assert s["user_id"] == str(u.id)
    assert s["title"] == "Shape"
    assert s["message_count"] == 0 and s["total_tokens"] == 0
    assert s["last_model"] is None and s["last_message_preview"] is None
    assert s["last_message_timestamp"] is None
    assert s["is_active"] is False
    assert set(await get(u.client, "shape")) == SESSION_FIELDS
    page = await listing(u.client)
    assert set(page) == {"sessions", "active_session_id", "next_cursor"}
    assert [set(x) for x in page["sessions"]] == [SESSION_FIELDS]


async def test_switch(make_user) -> None:
    u = await make_user()
    c = u.client
    for sid in ("a", "b", "c"):
        await create(c, sid)
    await assert_single_active(c, None)
    s = await update(c, "a", is_active=True)
    assert s["id"] == "a" and s["is_active"] is True
    await assert_single_active(c, "a")
    s = await update(c, "c", is_active=True)
    assert s["is_active"] is True
    await assert_single_active(c, "c")
    # Switching to the active session again is harmless.
    assert (await update(c, "c", is_active=True))["is_active"] is True
    await assert_single_active(c, "c")


async def test_only_one_active_under_concurrent_switches(make_user, conn) -> None:
    u = await make_user()
    c = u.client
    ids = [f"s{i}" for i in range(5)]
    for sid in ids:
        await create(c, sid)
    targets = [ids[i % len(ids)] for i in range(30)]
    responses = await asyncio.gather(
        *(c.post("/api/chat/session", json={"id": t, "is_active": True}) for t in targets)
    )
    assert [r.status_code for r in responses] == [200] * len(targets)
    page = await listing(c)
    active = page["active_session_id"]
    assert active in ids
    await assert_single_active(c, active)
    rows = await conn.fetch(
        "select scope, session_id from chatsessions.active_sessions where user_id = $1", u.id
    )
    assert [(r["scope"], r["session_id"]) for r in rows] == [("account", active)]


async def test_new_sessions_are_not_active_unless_asked(make_user) -> None:
    u = await make_user()
    c = u.client
    s = await create(c, "first", is_active=True)
    assert s["is_active"] is True
    s = await create(c, "second")
    assert s["is_active"] is False
    await assert_single_active(c, "first")
    s = await create(c, "third", is_active=True)
    assert s["is_active"] is True
    await assert_single_active(c, "third")
    # A session created without an id gets one, and is not active either.
    r = await c.post("/api/chat/sessions", json={})
    assert r.status_code == 201, r.text
    generated = r.json()["session"]
    assert generated["id"] and generated["is_active"] is False
    assert generated["title"]
    await assert_single_active(c, "third")


async def test_create_is_idempotent(make_user) -> None:
    u = await make_user()
    c = u.client
    r1 = await c.post("/api/chat/sessions", json={"id": "same", "title": "Original"})
    assert r1.status_code == 201, r1.text
    r2 = await c.post("/api/chat/sessions", json={"id": "same", "title": "Other title"})
    assert r2.status_code == 200, r2.text
    assert r2.json()["success"] is True
    # The existing session, unchanged.
    assert r2.json()["session"] == r1.json()["session"]
    page = await listing(c)
    assert [s["id"] for s in page["sessions"]] == ["same"]
    assert page["sessions"][0]["title"] == "Original"


async def test_create_again_with_is_active_activates_the_existing_session(make_user) -> None:
    u = await make_user()
    c = u.client
    await create(c, "x")
    await create(c, "y", is_active=True)
    r = await c.post("/api/chat/sessions", json={"id": "x", "is_active": True})
    assert r.status_code == 200, r.text
    assert r.json()["session"]["is_active"] is True
    await assert_single_active(c, "x")


# --- deactivation and deletion ------------------------------------------------------------


async def test_deactivate_active_session_leaves_none_active(make_user) -> None:
    u = await make_user()
    c = u.client
    await create(c, "a", is_active=True)
    await create(c, "b")
    s = await update(c, "a", is_active=False)
    assert s["is_active"] is False
    await assert_single_active(c, None)


async def test_deactivate_inactive_session_changes_nothing(make_user) -> None:
    u = await make_user()
    c = u.client
    await create(c, "a", is_active=True)
    await create(c, "b")
    before = await listing(c)
    s = await update(c, "b", is_active=False)
    assert s["is_active"] is False
    await assert_single_active(c, "a")
    assert await listing(c) == before


async def test_delete_active_session_leaves_none_active(make_user) -> None:
    u = await make_user()
    c = u.client
    await create(c, "keep")
    await create(c, "gone", is_active=True)
    await append(c, "gone", "a message that goes with its session")
    await update(c, "gone", is_active=True, scope="phone")
    r = await c.delete("/api/chat/sessions", params={"id": "gone"})
    assert r.status_code == 200, r.text
    assert r.json() == {"success": True, "id": "gone"}
    await assert_single_active(c, None)
    await assert_single_active(c, None, scope="phone")
    for path, params in (
        ("/api/chat/session", {"id": "gone"}),
        ("/api/chat/messages", {"session_id": "gone"}),
    ):
        r = await c.get(path, params=params)
        assert r.status_code == 404
        assert r.json() == {"error": "session not found", "code": "session_not_found"}
    r = await c.delete("/api/chat/sessions", params={"id": "gone"})
    assert r.status_code == 404
    assert r.json()["code"] == "session_not_found"
    assert [s["id"] for s in (await listing(c))["sessions"]] == ["keep"]


async def test_delete_removes_messages_so_the_id_can_be_reused(make_user) -> None:
    u = await make_user()
    c = u.client
    await create(c, "reuse")
    await c.post(
        "/api/chat/messages",
        json={"session_id": "reuse", "message": {"id": "m1", "role": "user", "content": "x"}},
    )
    assert (await c.delete("/api/chat/sessions", params={"id": "reuse"})).status_code == 200
    fresh = await create(c, "reuse")
    assert fresh["message_count"] == 0
    r = await c.get("/api/chat/messages", params={"session_id": "reuse"})
    assert r.json()["messages"] == []
    # The message id went with its session: it is free again, in any session.
    await create(c, "other")
    r = await c.post(
        "/api/chat/messages",
        json={"session_id": "other", "message": {"id": "m1", "role": "user", "content": "y"}},
    )
    assert r.status_code == 201, r.text


async def test_delete_inactive_session_keeps_the_active_one(make_user) -> None:
    u = await make_user()
    c = u.client
    await create(c, "active", is_active=True)
    await create(c, "other")
    assert (await c.delete("/api/chat/sessions", params={"id": "other"})).status_code == 200
    await assert_single_active(c, "active")


# --- per-device scopes --------------------------------------------------------------------


async def test_scopes_are_independent(make_user) -> None:
    u = await make_user()
    c = u.client
    for sid in ("a", "b", "c"):
        await create(c, sid)
    s = await update(c, "a", is_active=True, scope="phone")
    assert s["is_active"] is True
    s = await update(c, "b", is_active=True, scope="laptop")
    assert s["is_active"] is True
    await assert_single_active(c, "a", scope="phone")
    await assert_single_active(c, "b", scope="laptop")
    await assert_single_active(c, None)  # the default scope, "account"
    await assert_single_active(c, None, scope="account")

    await update(c, "c", is_active=True, scope="phone")
    await assert_single_active(c, "c", scope="phone")
    await assert_single_active(c, "b", scope="laptop")

    # Deactivating in one scope leaves the others alone.
    s = await update(c, "b", is_active=False, scope="laptop")
    assert s["is_active"] is False
    await assert_single_active(c, None, scope="laptop")
    await assert_single_active(c, "c", scope="phone")

    # Creating active in a scope only touches that scope.
    s = await create(c, "d", is_active=True, scope="tablet")
    assert s["is_active"] is True
    await assert_single_active(c, "d", scope="tablet")
    await assert_single_active(c, "c", scope="phone")
    await assert_single_active(c, None)


# --- 4: timestamps ------------------------------------------------------------------------


async def test_switch_moves_no_timestamp_of_any_session(make_user) -> None:
    u = await make_user()
    c = u.client
    for sid in ("a", "b", "c"):
        await create(c, sid)
    await append(c, "b")
    before = stamps((await listing(c))["sessions"])
    order = [s["id"] for s in (await listing(c))["sessions"]]
    await update(c, "a", is_active=True)
    await update(c, "b", is_active=True)
    await update(c, "c", is_active=True, scope="phone")
    await update(c, "b", is_active=False)
    await update(c, "c", is_active=True)
    after = await listing(c)
    assert stamps(after["sessions"]) == before
    assert [s["id"] for s in after["sessions"]] == order


async def test_rename_moves_updated_at_of_that_session_only(make_user) -> None:
    u = await make_user()
    c = u.client
    for sid in ("a", "b"):
        await create(c, sid)
    before = {s["id"]: s for s in (await listing(c))["sessions"]}
    renamed = await update(c, "a", title="Renamed")
    assert renamed["title"] == "Renamed"
    old = before["a"]
    assert ts(renamed["updated_at"]) > ts(old["updated_at"])
    assert ts(renamed["last_activity"]) > ts(old["last_activity"])
    assert renamed["created_at"] == old["created_at"]
    assert renamed["last_message_timestamp"] == old["last_message_timestamp"]
    after = {s["id"]: s for s in (await listing(c))["sessions"]}
    assert after["b"] == before["b"]
    assert after["a"]["title"] == "Renamed"
    assert after["a"]["updated_at"] == renamed["updated_at"]


async def test_noop_rename_moves_nothing(make_user) -> None:
    u = await make_user()
    c = u.client
    await create(c, "a", title="Same")
    before = await get(c, "a")
    after = await update(c, "a", title="Same")
    assert after == before
    assert await get(c, "a") == before


# --- 5: titles ----------------------------------------------------------------------------


async def test_titles_are_editable(make_user) -> None:
    u = await make_user()
    c = u.client
    await create(c, "t")
    for title in ("First", "Zweite Überschrift ✓", "  padded  ", "x" * 255, "😀" * 255):
        s = await update(c, "t", title=title)
        assert s["title"] == title
        assert (await get(c, "t"))["title"] == title
        assert (await listing(c))["sessions"][0]["title"] == title


async def test_title_on_create(make_user) -> None:
    u = await make_user()
    s = await create(u.client, "titled", title="My chat")
    assert s["title"] == "My chat"
    s = await create(u.client, "untitled")
    assert s["title"].strip()


# --- 6: title + is_active together --------------------------------------------------------


async def test_title_and_is_active_apply_together(make_user) -> None:
    u = await make_user()
    c = u.client
    await create(c, "a", is_active=True)
    await create(c, "b")
    s = await update(c, "b", title="Both", is_active=True)
    assert s["title"] == "Both" and s["is_active"] is True
    await assert_single_active(c, "b")
    assert (await get(c, "b"))["title"] == "Both"
    s = await update(c, "b", title="Both again", is_active=False)
    assert s["title"] == "Both again" and s["is_active"] is False
    await assert_single_active(c, None)


async def test_failing_combined_request_changes_nothing(make_user) -> None:
    u = await make_user()
    c = u.client
    await create(c, "a", title="A title", is_active=True)
    await create(c, "b", title="B title")
    before = await listing(c)
    before_phone = await listing(c, "phone")
    bad_requests = [
        {"id": "b", "title": "New", "is_active": "yes"},
        {"id": "b", "title": "New", "is_active": True, "scope": "not a scope"},
        {"id": "b", "title": "   ", "is_active": True},
        {"id": "b", "title": "x" * 256, "is_active": True},
        {"id": "b", "title": "New", "is_active": True, "unknown_field": 1},
        {"id": "b", "title": 5, "is_active": True},
    ]
    for body in bad_requests:
        r = await c.post("/api/chat/session", json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["code"] == "invalid_request"
    r = await c.post("/api/chat/session", json={"id": "nope", "title": "New", "is_active": True})
    assert r.status_code == 404
    assert r.json() == {"error": "session not found", "code": "session_not_found"}
    assert await listing(c) == before
    assert await listing(c, "phone") == before_phone


async def test_combined_change_is_one_transaction_in_the_database(make_user, conn) -> None:
    """The function behind POST /api/chat/session renames first, then switches: when the switch
    fails (here: a scope the database refuses), the rename must be rolled back with it."""
    u = await make_user()
    c = u.client
    await create(c, "a", title="Kept", is_active=True)
    await create(c, "b", title="Kept too")
    before = await listing(c)
    claims = json.dumps({"sub": str(u.id), "role": "authenticated", "aud": "authenticated"})
    failed = False
    try:
        async with conn.transaction():
            await conn.execute(
                "select set_config('role', 'authenticated', true),"
                " set_config('request.jwt.claims', $1, true)",
                claims,
            )
            await conn.fetchval(
                "select chatsessions.update_session($1, $2, $3, $4)",
                "b",
                "Renamed",
                True,
                "not a scope",
            )
    except asyncpg.PostgresError:
        failed = True
    assert failed
    assert await listing(c) == before


# --- listing order and pagination ---------------------------------------------------------


async def test_listing_order(make_user) -> None:
    u = await make_user()
    c = u.client
    for sid in ("s1", "s2", "s3"):
        await create(c, sid)

    async def order() -> list[str]:
        return [s["id"] for s in (await listing(c))["sessions"]]

    assert await order() == ["s3", "s2", "s1"]  # newest creation first
    await append(c, "s1")
    assert await order() == ["s1", "s3", "s2"]  # a new message moves a session to the top
    await update(c, "s2", title="Renamed")
    assert await order() == ["s1", "s3", "s2"]  # a rename does not reorder
    await update(c, "s2", is_active=True)
    await update(c, "s3", is_active=True, scope="phone")
    assert await order() == ["s1", "s3", "s2"]  # nor does a switch
    await update(c, "s2", title="Renamed again", is_active=False)
    assert await order() == ["s1", "s3", "s2"]
    await create(c, "s4")
    assert await order() == ["s4", "s1", "s3", "s2"]  # created after s1's last message
    await append(c, "s2")
    assert await order() == ["s2", "s4", "s1", "s3"]
    # GET of a session reorders nothing either.
    await get(c, "s3")
    assert await order() == ["s2", "s4", "s1", "s3"]


async def collect_pages(
    c: httpx.AsyncClient, limit: int, between_pages: Any = None
) -> tuple[list[str], list[int]]:
    ids: list[str] = []
    sizes: list[int] = []
    cursor = None
    for _ in range(20):
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        page = await listing(c, **params)
        ids += [s["id"] for s in page["sessions"]]
        sizes.append(len(page["sessions"]))
        cursor = page["next_cursor"]
        if cursor is None:
            return ids, sizes
        if between_pages is not None:
            await between_pages()
    raise AssertionError("pagination did not end")


async def test_keyset_pagination(make_user) -> None:
    u = await make_user()
    c = u.client
    for i in range(7):
        await create(c, f"p{i}")
    await append(c, "p2")
    full = [s["id"] for s in (await listing(c))["sessions"]]
    assert len(full) == 7 and full[0] == "p2"
    ids, sizes = await collect_pages(c, 3)
    assert ids == full  # same order, no duplicates, no gaps
    assert sizes == [3, 3, 1]
    ids, sizes = await collect_pages(c, 1)
    assert ids == full and sizes == [1] * 7
    ids, sizes = await collect_pages(c, 7)
    assert ids == full and sizes == [7]


async def test_pagination_last_full_page_has_no_cursor(make_user) -> None:
    u = await make_user()
    c = u.client
    for i in range(6):
        await create(c, f"q{i}")
    ids, sizes = await collect_pages(c, 3)
    assert sizes == [3, 3]
    assert len(set(ids)) == 6


async def test_pagination_is_stable_while_renaming_and_switching(make_user) -> None:
    u = await make_user()
    c = u.client
    for i in range(7):
        await create(c, f"r{i}")
    full = [s["id"] for s in (await listing(c))["sessions"]]
    counter = 0

    async def churn() -> None:
        nonlocal counter
        counter += 1
        for sid in full:
            await update(c, sid, title=f"Title {counter} of {sid}")
        await update(c, full[counter % 7], is_active=True)

    ids, sizes = await collect_pages(c, 3, churn)
    assert ids == full
    assert sizes == [3, 3, 1]


async def test_listing_of_a_new_user_is_empty(make_user) -> None:
    u = await make_user()
    page = await listing(u.client)
    assert page == {"sessions": [], "active_session_id": None, "next_cursor": None}


# --- the original API's statistics fields -------------------------------------------------


async def test_old_stats_fields_are_accepted_and_ignored(make_user) -> None:
    u = await make_user()
    c = u.client
    await create(c, "stats")
    r = await c.post(
        "/api/chat/messages",
        json={
            "session_id": "stats",
            "message": {
                "role": "assistant",
                "content": "real",
                "model": "real-model",
                "input_tokens": 3,
                "output_tokens": 4,
            },
        },
    )
    assert r.status_code == 201, r.text
    before = await get(c, "stats")
    r = await c.post(
        "/api/chat/session",
        json={
            "id": "stats",
            "message_count": 999,
            "total_tokens": 123456,
            "last_model": "fake-model",
            "last_message_preview": "fake preview",
            "last_message_timestamp": "2001-01-01T00:00:00Z",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["session"] == before
    assert await get(c, "stats") == before
    assert before["message_count"] == 1
    assert before["total_tokens"] == 7
    assert before["last_model"] == "real-model"
    assert before["last_message_preview"] == "real"
    # Together with a real change, the stats are still ignored.
    r = await c.post(
        "/api/chat/session",
        json={"id": "stats", "title": "Renamed", "is_active": True, "message_count": 0},
    )
    assert r.status_code == 200, r.text
    s = r.json()["session"]
    assert s["title"] == "Renamed" and s["is_active"] is True
    assert s["message_count"] == 1 and s["total_tokens"] == 7


# --- GET /api/chat/session ----------------------------------------------------------------


async def test_get_session_errors(make_user) -> None:
    u = await make_user()
    c = u.client
    r = await c.get("/api/chat/session")
    assert r.status_code == 400
    assert r.json()["code"] == "invalid_request"
    r = await c.get("/api/chat/session", params={"id": "missing"})
    assert r.status_code == 404
    assert r.json() == {"error": "session not found", "code": "session_not_found"}
    r = await c.post("/api/chat/session", json={"id": "missing", "title": "x"})
    assert r.status_code == 404
    assert r.json() == {"error": "session not found", "code": "session_not_found"}


# --- durability: the answer comes after the commit ----------------------------------------


async def raw_request(
    app: Any, method: str, path: str, token: str, body: dict[str, Any], on_response: Any
) -> int:
    """Calls the ASGI app directly; `on_response()` runs when the last body chunk is sent,
    i.e. when a real server would hand the response to the client."""
    payload = json.dumps(body).encode()
    sent_body = False
    done = asyncio.Event()
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": payload, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            await on_response()
            done.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"test"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"authorization", f"Bearer {token}".encode()),
        ],
        "client": ("127.0.0.1", 12345),
        "server": ("test", 80),
        "state": {},
    }
    await app(scope, receive, send)
    return status


async def test_write_is_committed_before_the_response_is_sent(app, make_user, conn) -> None:
    """A client that got 201 and immediately asks again (on another connection) must see its
    session: the transaction has to commit before the response goes out, not after."""
    u = await make_user()
    await listing(u.client)  # the profile exists
    seen: dict[str, Any] = {}

    async def visible() -> bool:
        return bool(
            await conn.fetchval(
                "select exists (select 1 from chatsessions.chat_sessions"
                " where user_id = $1 and id = $2)",
                u.id,
                "durable",
            )
        )

    async def on_response() -> None:
        seen["visible_when_answered"] = await visible()

    status = await raw_request(
        app, "POST", "/api/chat/sessions", u.token, {"id": "durable"}, on_response
    )
    assert status == 201
    assert await visible()  # committed in the end
    assert seen["visible_when_answered"] is True, (
        "the response was sent before the transaction committed"
    )
