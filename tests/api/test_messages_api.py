"""Messages through the HTTP API: appends, order, statistics, pagination and idempotent retries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

MESSAGE_FIELDS = {
    "id",
    "session_id",
    "seq",
    "role",
    "content",
    "model",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "error_message",
    "metadata",
    "created_at",
}
NOT_FOUND = {"error": "session not found", "code": "session_not_found"}


async def create(c: httpx.AsyncClient, sid: str) -> dict[str, Any]:
    r = await c.post("/api/chat/sessions", json={"id": sid})
    assert r.status_code == 201, r.text
    return r.json()["session"]


async def post(c: httpx.AsyncClient, sid: str, **body: Any) -> httpx.Response:
    return await c.post("/api/chat/messages", json={"session_id": sid, **body})


async def append(c: httpx.AsyncClient, sid: str, **body: Any) -> dict[str, Any]:
    r = await post(c, sid, **body)
    assert r.status_code == 201, r.text
    return r.json()


async def all_messages(c: httpx.AsyncClient, sid: str) -> list[dict[str, Any]]:
    r = await c.get("/api/chat/messages", params={"session_id": sid, "limit": 500})
    assert r.status_code == 200, r.text
    assert r.json()["next_after"] is None
    return r.json()["messages"]


async def session(c: httpx.AsyncClient, sid: str) -> dict[str, Any]:
    r = await c.get("/api/chat/session", params={"id": sid})
    assert r.status_code == 200, r.text
    return r.json()["session"]


async def test_append_one_message(make_user) -> None:
    u = await make_user()
    c = u.client
    before = await create(c, "s")
    body = await append(
        c,
        "s",
        message={
            "id": "m1",
            "role": "user",
            "content": "Hello there",
            "model": "gpt-x",
            "input_tokens": 5,
            "output_tokens": 7,
            "metadata": {"lang": "en", "nested": {"list": [1, "two", None, True]}},
        },
    )
    assert set(body) == {"messages", "session"}
    [m] = body["messages"]
    assert set(m) == MESSAGE_FIELDS
    assert m["id"] == "m1" and m["session_id"] == "s" and m["seq"] == 1
    assert m["role"] == "user" and m["content"] == "Hello there" and m["model"] == "gpt-x"
    assert (m["input_tokens"], m["output_tokens"], m["total_tokens"]) == (5, 7, 12)
    assert m["error_message"] is None
    assert m["metadata"] == {"lang": "en", "nested": {"list": [1, "two", None, True]}}
    s = body["session"]
    assert s["id"] == "s"
    assert s["message_count"] == 1
    assert s["total_tokens"] == 12
    assert s["last_model"] == "gpt-x"
    assert s["last_message_preview"] == "Hello there"
    assert s["last_message_timestamp"] == m["created_at"]
    # A message is activity: updated_at and last_activity move (not before the message).
    created = datetime.fromisoformat(m["created_at"])
    assert datetime.fromisoformat(s["updated_at"]) >= created
    assert datetime.fromisoformat(s["last_activity"]) >= created
    assert datetime.fromisoformat(s["updated_at"]) > datetime.fromisoformat(before["updated_at"])
    assert s["is_active"] is False
    assert await session(c, "s") == s
    assert await all_messages(c, "s") == [m]


async def test_append_without_id_gets_one(make_user) -> None:
    u = await make_user()
    c = u.client
    await create(c, "s")
    [m] = (await append(c, "s", message={"role": "system", "content": ""}))["messages"]
    assert m["id"]
    assert m["content"] == "" and m["metadata"] == {} and m["total_tokens"] == 0
    assert m["model"] is None


async def test_append_batch_in_order_with_stats(make_user) -> None:
    u = await make_user()
    c = u.client
    await create(c, "s")
    await append(c, "s", message={"role": "user", "content": "first", "total_tokens": 1})
    batch = [
        {"id": "b1", "role": "user", "content": "q", "input_tokens": 10},
        {"id": "b2", "role": "assistant", "content": "a", "model": "m-1", "output_tokens": 20},
        {"id": "b3", "role": "assistant", "content": "last one", "total_tokens": 5},
    ]
    body = await append(c, "s", messages=batch)
    msgs = body["messages"]
    assert [m["id"] for m in msgs] == ["b1", "b2", "b3"]
    assert [m["seq"] for m in msgs] == [2, 3, 4]
    assert [m["total_tokens"] for m in msgs] == [10, 20, 5]
    s = body["session"]
    assert s["message_count"] == 4
    assert s["total_tokens"] == 1 + 10 + 20 + 5
    # The newest message has no model: the newest model in the batch is kept.
    assert s["last_model"] == "m-1"
    assert s["last_message_preview"] == "last one"
    assert s["last_message_timestamp"] == msgs[-1]["created_at"]
    listed = await all_messages(c, "s")
    assert [m["seq"] for m in listed] == [1, 2, 3, 4]
    assert listed[1:] == msgs
    # A later message without a model keeps the last known model.
    s = (await append(c, "s", message={"role": "user", "content": "more"}))["session"]
    assert s["last_model"] == "m-1" and s["last_message_preview"] == "more"


async def test_explicit_total_tokens_wins(make_user) -> None:
    u = await make_user()
    c = u.client
    await create(c, "s")
    [m] = (
        await append(
            c,
            "s",
            message={
                "role": "assistant",
                "content": "x",
                "input_tokens": 3,
                "output_tokens": 4,
                "total_tokens": 100,
            },
        )
    )["messages"]
    assert m["total_tokens"] == 100
    assert (await session(c, "s"))["total_tokens"] == 100


async def test_preview_is_truncated(make_user) -> None:
    u = await make_user()
    c = u.client
    await create(c, "s")
    content = "é" * 300 + "tail"
    body = await append(c, "s", message={"role": "assistant", "content": content})
    assert body["messages"][0]["content"] == content
    preview = body["session"]["last_message_preview"]
    assert preview == content[:280]


async def test_seq_order_over_many_appends(make_user) -> None:
    u = await make_user()
    c = u.client
    await create(c, "s")
    for i in range(5):
        await append(c, "s", message={"role": "user", "content": f"m{i}"})
    await append(c, "s", messages=[{"role": "assistant", "content": f"b{i}"} for i in range(5)])
    listed = await all_messages(c, "s")
    assert [m["seq"] for m in listed] == list(range(1, 11))
    assert [m["content"] for m in listed] == [f"m{i}" for i in range(5)] + [
        f"b{i}" for i in range(5)
    ]
    created = [datetime.fromisoformat(m["created_at"]) for m in listed]
    assert created == sorted(created)


async def test_pagination(make_user) -> None:
    u = await make_user()
    c = u.client
    await create(c, "s")
    await append(c, "s", messages=[{"role": "user", "content": str(i)} for i in range(7)])
    seen: list[int] = []
    after = 0
    pages = []
    for _ in range(10):
        r = await c.get(
            "/api/chat/messages", params={"session_id": "s", "after": after, "limit": 3}
        )
        assert r.status_code == 200, r.text
        page = r.json()
        pages.append(len(page["messages"]))
        seen += [m["seq"] for m in page["messages"]]
        if page["next_after"] is None:
            break
        assert page["next_after"] == page["messages"][-1]["seq"]
        after = page["next_after"]
    assert seen == list(range(1, 8))
    assert pages == [3, 3, 1]
    # A full last page says there is nothing more.
    r = await c.get("/api/chat/messages", params={"session_id": "s", "after": 4, "limit": 3})
    assert [m["seq"] for m in r.json()["messages"]] == [5, 6, 7]
    assert r.json()["next_after"] is None
    # After the end: an empty page.
    r = await c.get("/api/chat/messages", params={"session_id": "s", "after": 7})
    assert r.json() == {"messages": [], "next_after": None}
    # Default: from the start.
    r = await c.get("/api/chat/messages", params={"session_id": "s"})
    assert [m["seq"] for m in r.json()["messages"]] == list(range(1, 8))


async def test_empty_session_lists_no_messages(make_user) -> None:
    u = await make_user()
    await create(u.client, "s")
    r = await u.client.get("/api/chat/messages", params={"session_id": "s"})
    assert r.status_code == 200
    assert r.json() == {"messages": [], "next_after": None}


async def test_retry_with_client_ids_is_idempotent(make_user) -> None:
    u = await make_user()
    c = u.client
    await create(c, "s")
    batch = [
        {"id": "r1", "role": "user", "content": "hi", "input_tokens": 2},
        {"id": "r2", "role": "assistant", "content": "hello", "model": "m", "output_tokens": 3},
    ]
    first = await append(c, "s", messages=batch)
    again = await append(c, "s", messages=batch)
    assert again["messages"] == first["messages"]
    assert again["session"] == first["session"]
    assert first["session"]["message_count"] == 2
    assert first["session"]["total_tokens"] == 5
    single = await append(c, "s", message=batch[1])
    assert single["messages"] == first["messages"][1:]
    assert single["session"] == first["session"]
    assert len(await all_messages(c, "s")) == 2

    # A retry that carries one new message adds only that one.
    mixed = await append(
        c,
        "s",
        messages=[batch[1], {"id": "r3", "role": "user", "content": "new", "total_tokens": 4}],
    )
    assert [(m["id"], m["seq"]) for m in mixed["messages"]] == [("r2", 2), ("r3", 3)]
    assert mixed["session"]["message_count"] == 3
    assert mixed["session"]["total_tokens"] == 9
    assert [m["id"] for m in await all_messages(c, "s")] == ["r1", "r2", "r3"]


async def test_retry_returns_the_stored_message(make_user) -> None:
    """A retry is recognised by its id: what was stored the first time stays."""
    u = await make_user()
    c = u.client
    await create(c, "s")
    first = await append(c, "s", message={"id": "x1", "role": "user", "content": "original"})
    again = await append(c, "s", message={"id": "x1", "role": "user", "content": "changed"})
    assert again["messages"] == first["messages"]
    assert again["session"]["message_count"] == 1
    assert [m["content"] for m in await all_messages(c, "s")] == ["original"]


async def test_message_id_used_in_another_session_is_a_conflict(make_user) -> None:
    u = await make_user()
    c = u.client
    await create(c, "one")
    await create(c, "two")
    await append(c, "one", message={"id": "taken", "role": "user", "content": "in one"})
    await append(c, "two", message={"id": "t-ok", "role": "user", "content": "in two"})
    one_before = (await session(c, "one"), await all_messages(c, "one"))
    two_before = (await session(c, "two"), await all_messages(c, "two"))

    r = await post(c, "two", message={"id": "taken", "role": "user", "content": "again"})
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "message_id_conflict"
    assert isinstance(r.json()["error"], str) and r.json()["error"]
    # A batch with one conflicting id is refused as a whole.
    r = await post(
        c,
        "two",
        messages=[
            {"id": "fresh", "role": "user", "content": "would be new"},
            {"id": "taken", "role": "user", "content": "again"},
        ],
    )
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "message_id_conflict"

    assert (await session(c, "one"), await all_messages(c, "one")) == one_before
    assert (await session(c, "two"), await all_messages(c, "two")) == two_before


async def test_duplicate_ids_within_one_batch_lose_no_message(make_user) -> None:
    """Two different messages under one id in one request: the second must not vanish while the
    request reports success; the request is refused and nothing is stored."""
    u = await make_user()
    c = u.client
    await create(c, "s")
    r = await post(
        c,
        "s",
        messages=[
            {"id": "dup", "role": "user", "content": "one"},
            {"id": "dup", "role": "assistant", "content": "two"},
        ],
    )
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["code"]
    assert await all_messages(c, "s") == []
    assert (await session(c, "s"))["message_count"] == 0


async def test_unknown_session(make_user) -> None:
    u = await make_user()
    c = u.client
    r = await c.get("/api/chat/messages", params={"session_id": "missing"})
    assert r.status_code == 404
    assert r.json() == NOT_FOUND
    for body in (
        {"message": {"role": "user", "content": "x"}},
        {"message": {"id": "with-id", "role": "user", "content": "x"}},
        {"messages": [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}]},
    ):
        r = await post(c, "missing", **body)
        assert r.status_code == 404, r.text
        assert r.json() == NOT_FOUND
    # Nothing was created on the way.
    r = await c.get("/api/chat/sessions")
    assert r.json()["sessions"] == []


async def test_error_messages_do_not_count(make_user) -> None:
    u = await make_user()
    c = u.client
    await create(c, "s")
    ok = await append(
        c,
        "s",
        message={
            "role": "assistant",
            "content": "good answer",
            "model": "good",
            "total_tokens": 10,
        },
    )
    stats_before = {k: v for k, v in ok["session"].items() if k != "is_active"}
    failed = await append(
        c,
        "s",
        message={
            "role": "assistant",
            "content": "partial",
            "model": "broken",
            "total_tokens": 50,
            "error_message": "the model timed out",
        },
    )
    [m] = failed["messages"]
    assert m["error_message"] == "the model timed out"
    assert m["seq"] == 2
    s = failed["session"]
    for key in (
        "message_count",
        "total_tokens",
        "last_model",
        "last_message_preview",
        "last_message_timestamp",
    ):
        assert s[key] == stats_before[key], key
    assert s["message_count"] == 1 and s["total_tokens"] == 10 and s["last_model"] == "good"
    # Still listed, in order, with its error.
    listed = await all_messages(c, "s")
    assert [x["error_message"] for x in listed] == [None, "the model timed out"]
    # In a batch too: only the good messages count.
    body = await append(
        c,
        "s",
        messages=[
            {"role": "user", "content": "q", "total_tokens": 1},
            {"role": "assistant", "content": "err", "total_tokens": 7, "error_message": "e"},
        ],
    )
    assert body["session"]["message_count"] == 2
    assert body["session"]["total_tokens"] == 11
    assert body["session"]["last_message_preview"] == "q"


async def test_appending_reports_is_active_for_the_scope(make_user) -> None:
    u = await make_user()
    c = u.client
    await create(c, "s")
    r = await c.post("/api/chat/session", json={"id": "s", "is_active": True, "scope": "phone"})
    assert r.status_code == 200
    body = await append(c, "s", message={"role": "user", "content": "x"})
    assert body["session"]["is_active"] is False  # account scope
    body = await append(c, "s", message={"role": "user", "content": "y"}, scope="phone")
    assert body["session"]["is_active"] is True


async def test_appending_does_not_change_the_active_session(make_user) -> None:
    u = await make_user()
    c = u.client
    await create(c, "a")
    await create(c, "b")
    await c.post("/api/chat/session", json={"id": "a", "is_active": True})
    await append(c, "b", message={"role": "user", "content": "x"})
    r = await c.get("/api/chat/sessions")
    assert r.json()["active_session_id"] == "a"
    assert [s["id"] for s in r.json()["sessions"]] == ["b", "a"]
