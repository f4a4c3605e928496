from __future__ import annotations


async def test_switch_through_api(make_user) -> None:
    alice = await make_user()
    c = alice.client
    assert (await c.post("/api/chat/sessions", json={"id": "a", "is_active": True})).status_code == 201
    assert (await c.post("/api/chat/sessions", json={"id": "b"})).status_code == 201
    r = await c.post("/api/chat/session", json={"id": "b", "is_active": True})
    assert r.status_code == 200, r.text
    assert r.json()["session"]["is_active"] is True
    listing = (await c.get("/api/chat/sessions")).json()
    assert listing["active_session_id"] == "b"
    assert [s["is_active"] for s in listing["sessions"] if s["id"] == "a"] == [False]
