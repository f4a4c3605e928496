"""Two users on every route: another user's session is indistinguishable from a missing one."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

NOT_FOUND = {"error": "session not found", "code": "session_not_found"}
SCOPES = ("account", "phone")


async def snapshot(c: httpx.AsyncClient) -> dict[str, Any]:
    """Everything a user can see of their data: listings (per scope), sessions, messages."""
    state: dict[str, Any] = {}
    for scope in SCOPES:
        r = await c.get("/api/chat/sessions", params={"scope": scope, "limit": 200})
        assert r.status_code == 200, r.text
        state[f"listing:{scope}"] = r.json()
    for s in state["listing:account"]["sessions"]:
        for scope in SCOPES:
            r = await c.get("/api/chat/session", params={"id": s["id"], "scope": scope})
            assert r.status_code == 200, r.text
            state[f"session:{s['id']}:{scope}"] = r.json()
        r = await c.get("/api/chat/messages", params={"session_id": s["id"], "limit": 500})
        assert r.status_code == 200, r.text
        state[f"messages:{s['id']}"] = r.json()
    return state


@pytest.fixture
async def alice(make_user) -> Any:
    """A user with two sessions (one active in each scope) and messages."""
    a = await make_user()
    c = a.client
    for body in (
        {"id": "shared-id", "title": "Alice's secret plans", "is_active": True},
        {"id": "alice-only", "title": "Alice's other chat"},
    ):
        assert (await c.post("/api/chat/sessions", json=body)).status_code == 201
    r = await c.post(
        "/api/chat/session", json={"id": "alice-only", "is_active": True, "scope": "phone"}
    )
    assert r.status_code == 200
    r = await c.post(
        "/api/chat/messages",
        json={
            "session_id": "shared-id",
            "messages": [
                {"id": "alice-m1", "role": "user", "content": "secret question"},
                {"id": "alice-m2", "role": "assistant", "content": "secret answer", "model": "m"},
            ],
        },
    )
    assert r.status_code == 201, r.text
    return a


def attempts(sid: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every request that names session `sid`, as (method, path, httpx kwargs)."""
    return [
        ("GET", "/api/chat/session", {"params": {"id": sid}}),
        ("GET", "/api/chat/session", {"params": {"id": sid, "scope": "phone"}}),
        ("POST", "/api/chat/session", {"json": {"id": sid}}),
        ("POST", "/api/chat/session", {"json": {"id": sid, "title": "Hijacked"}}),
        ("POST", "/api/chat/session", {"json": {"id": sid, "is_active": True}}),
        ("POST", "/api/chat/session", {"json": {"id": sid, "is_active": False}}),
        ("POST", "/api/chat/session", {"json": {"id": sid, "is_active": True, "scope": "phone"}}),
        (
            "POST",
            "/api/chat/session",
            {"json": {"id": sid, "title": "Hijacked", "is_active": True}},
        ),
        ("DELETE", "/api/chat/sessions", {"params": {"id": sid}}),
        ("GET", "/api/chat/messages", {"params": {"session_id": sid}}),
        ("GET", "/api/chat/messages", {"params": {"session_id": sid, "after": 1, "limit": 1}}),
        (
            "POST",
            "/api/chat/messages",
            {"json": {"session_id": sid, "message": {"role": "user", "content": "injected"}}},
        ),
        (
            "POST",
            "/api/chat/messages",
            {
                "json": {
                    "session_id": sid,
                    "message": {"id": "alice-m1", "role": "user", "content": "retry?"},
                }
            },
        ),
        (
            "POST",
            "/api/chat/messages",
            {
                "json": {
                    "session_id": sid,
                    "messages": [
                        {"id": "b-new", "role": "user", "content": "x"},
                        {"role": "assistant", "content": "y", "error_message": "e"},
                    ],
                }
            },
        ),
    ]


async def test_other_users_session_is_indistinguishable_from_a_missing_one(
    alice, make_user
) -> None:
    bob = await make_user()
    before_alice = await snapshot(alice.client)
    before_bob = await snapshot(bob.client)
    for (method, path, kwargs), (_, _, missing_kwargs) in zip(
        attempts("shared-id"), attempts("no-such-session"), strict=True
    ):
        theirs = await bob.client.request(method, path, **kwargs)
        missing = await bob.client.request(method, path, **missing_kwargs)
        assert theirs.status_code == 404, (method, path, kwargs, theirs.text)
        assert theirs.json() == NOT_FOUND, (method, path, kwargs)
        assert missing.status_code == 404, (method, path, missing_kwargs, missing.text)
        assert missing.json() == NOT_FOUND
        assert theirs.content == missing.content
        assert theirs.headers.get("content-type") == missing.headers.get("content-type")
    assert await snapshot(alice.client) == before_alice
    assert await snapshot(bob.client) == before_bob


async def test_listing_never_shows_other_users_sessions(alice, make_user) -> None:
    bob = await make_user()
    for scope in SCOPES:
        r = await bob.client.get("/api/chat/sessions", params={"scope": scope})
        assert r.json() == {"sessions": [], "active_session_id": None, "next_cursor": None}
    assert (await bob.client.post("/api/chat/sessions", json={"id": "bobs"})).status_code == 201
    r = await bob.client.get("/api/chat/sessions")
    assert [s["id"] for s in r.json()["sessions"]] == ["bobs"]
    assert r.json()["active_session_id"] is None
    assert {s["user_id"] for s in r.json()["sessions"]} == {str(bob.id)}
    # Alice still sees exactly hers.
    r = await alice.client.get("/api/chat/sessions")
    assert sorted(s["id"] for s in r.json()["sessions"]) == ["alice-only", "shared-id"]
    assert r.json()["active_session_id"] == "shared-id"


async def test_same_id_for_another_user_is_an_independent_session(alice, make_user) -> None:
    bob = await make_user()
    before_alice = await snapshot(alice.client)
    r = await bob.client.post("/api/chat/sessions", json={"id": "shared-id", "title": "Bob's"})
    assert r.status_code == 201, r.text  # created, not "already exists"
    s = r.json()["session"]
    assert s["user_id"] == str(bob.id)
    assert s["title"] == "Bob's"
    assert s["message_count"] == 0 and s["is_active"] is False
    # Bob works with his session of that id...
    r = await bob.client.post("/api/chat/session", json={"id": "shared-id", "is_active": True})
    assert r.status_code == 200
    r = await bob.client.post(
        "/api/chat/session", json={"id": "shared-id", "title": "Bob renamed", "scope": "phone"}
    )
    assert r.status_code == 200
    # ...reusing Alice's message ids too: they are his own, no conflict, nothing leaks.
    r = await bob.client.post(
        "/api/chat/messages",
        json={
            "session_id": "shared-id",
            "message": {"id": "alice-m1", "role": "user", "content": "bob's own"},
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["messages"][0]["seq"] == 1
    assert r.json()["session"]["message_count"] == 1
    r = await bob.client.get("/api/chat/messages", params={"session_id": "shared-id"})
    assert [m["content"] for m in r.json()["messages"]] == ["bob's own"]
    r = await bob.client.get("/api/chat/session", params={"id": "shared-id"})
    assert r.json()["session"]["title"] == "Bob renamed"
    assert r.json()["session"]["is_active"] is True
    # Alice's session of the same id is untouched, and so is which one is active for her.
    assert await snapshot(alice.client) == before_alice
    # Bob deleting his leaves hers.
    r = await bob.client.delete("/api/chat/sessions", params={"id": "shared-id"})
    assert r.status_code == 200
    assert await snapshot(alice.client) == before_alice
    r = await bob.client.get("/api/chat/session", params={"id": "shared-id"})
    assert r.status_code == 404


async def test_alice_unaffected_by_bobs_own_activity(alice, make_user) -> None:
    bob = await make_user()
    before_alice = await snapshot(alice.client)
    c = bob.client
    assert (
        await c.post("/api/chat/sessions", json={"id": "alice-only", "is_active": True})
    ).status_code == 201
    assert (
        await c.post("/api/chat/sessions", json={"id": "b2", "is_active": True, "scope": "phone"})
    ).status_code == 201
    r = await c.post(
        "/api/chat/messages",
        json={"session_id": "b2", "message": {"id": "alice-m2", "role": "user", "content": "x"}},
    )
    assert r.status_code == 201
    assert (await c.delete("/api/chat/sessions", params={"id": "alice-only"})).status_code == 200
    assert await snapshot(alice.client) == before_alice
