"""End-to-end tests of the web app against a real server and a real PostgreSQL.

What the database holds is always checked through the HTTP API with the same user's token, not
only through the DOM.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .conftest import REPO, UserApi, wait_until


def item(page: Any, session_id: str) -> Any:
    return page.locator(f'[data-testid="conversation-item"][data-id="{session_id}"]')


def current(page: Any) -> Any:
    return page.locator('[data-testid="conversation-item"][aria-current="true"]')


def is_path(path: str) -> Callable[[str], bool]:
    return lambda url: urlparse(url).path == path


# URL matchers are kept as objects: page.unroute() finds a route by the same matcher.
SESSION = is_path("/api/chat/session")
SESSIONS = is_path("/api/chat/sessions")
MESSAGES = is_path("/api/chat/messages")


def no_page_errors(page: Any) -> None:
    errors = [e for e in page.js_errors if e.startswith("pageerror")]
    assert not errors, errors


def three(user: UserApi) -> tuple[str, str, str]:
    """Sessions A, B, C (C newest, so listed first); A is active."""
    a = user.create("Alpha", active=True)["id"]
    b = user.create("Bravo")["id"]
    c = user.create("Charlie")["id"]
    return a, b, c


# ---- signing in -----------------------------------------------------------------------


def test_dev_sign_in_then_a_401_returns_to_sign_in(
    new_context: Any, make_user: Any, expect: Any
) -> None:
    ctx = new_context()
    page = ctx.new_page()
    page.goto("/")
    expect(page.get_by_test_id("signin-form")).to_be_visible()
    name = "signin-test-user"
    page.get_by_test_id("signin-name").fill(name)
    page.get_by_test_id("signin-submit").click()
    expect(page.get_by_test_id("app")).to_be_visible()
    expect(page.get_by_test_id("user-name")).to_have_text(name)
    expect(page.get_by_test_id("sync-status")).to_have_attribute("data-state", "synced")
    token = page.evaluate("localStorage.getItem('chatsessions:token')")
    assert token and make_user(name).user_id == page.evaluate(
        "JSON.parse(atob(localStorage.getItem('chatsessions:token').split('.')[1]"
        ".replace(/-/g,'+').replace(/_/g,'/'))).sub"
    )

    # A token the server no longer accepts: back to the sign-in screen, with a reason.
    page.evaluate("localStorage.setItem('chatsessions:token', 'not-a-valid-token')")
    page.reload()
    expect(page.get_by_test_id("signin-form")).to_be_visible()
    expect(page.get_by_test_id("signin-message")).to_contain_text("sign in again")
    assert page.evaluate("localStorage.getItem('chatsessions:token')") is None


def test_token_handed_in_fragment_or_global(new_context: Any, user: UserApi, expect: Any) -> None:
    user.create("Handed over", active=True)
    ctx = new_context()
    page = ctx.new_page()
    page.goto(f"/?x=1#access_token={user.token}")
    expect(page.get_by_test_id("conversation-item")).to_have_count(1)
    assert "access_token" not in page.url and page.url.endswith("/?x=1"), page.url
    assert page.evaluate("localStorage.getItem('chatsessions:token')") == user.token

    ctx2 = new_context()
    ctx2.add_init_script(f"window.CHATSESSIONS_TOKEN = {user.token!r};")
    page2 = ctx2.new_page()
    page2.goto("/")
    expect(current(page2)).to_contain_text("Handed over")


# ---- switching ------------------------------------------------------------------------


def test_click_switches_on_screen_and_in_database(
    open_app: Any, user: UserApi, expect: Any
) -> None:
    a, b, c = three(user)
    page = open_app(user)
    expect(item(page, a)).to_have_attribute("aria-current", "true")
    expect(page.get_by_test_id("conversation-item")).to_have_count(3)

    item(page, b).get_by_test_id("conversation-open").click()
    expect(item(page, b)).to_have_attribute("aria-current", "true")
    expect(current(page)).to_have_count(1)
    expect(page.get_by_test_id("conversation-header-title")).to_have_text("Bravo")
    wait_until(lambda: user.active_id() == b, message="B active in the database")
    expect(page.get_by_test_id("sync-status")).to_have_attribute("data-state", "synced")
    expect(item(page, b)).to_have_attribute("data-loading", "false")

    # Keyboard: arrows move through the list, Enter opens.
    item(page, b).get_by_test_id("conversation-open").focus()
    page.keyboard.press("ArrowUp")
    expect(item(page, c).get_by_test_id("conversation-open")).to_be_focused()
    page.keyboard.press("End")
    expect(item(page, a).get_by_test_id("conversation-open")).to_be_focused()
    page.keyboard.press("Enter")
    expect(item(page, a)).to_have_attribute("aria-current", "true")
    wait_until(lambda: user.active_id() == a, message="A active in the database")
    no_page_errors(page)


def test_rapid_clicks_last_choice_wins(open_app: Any, user: UserApi, expect: Any) -> None:
    a, b, c = three(user)
    x = user.create("Xray", active=True)["id"]
    page = open_app(user)
    expect(item(page, x)).to_have_attribute("aria-current", "true")

    # Natural rapid clicks.
    for sid in (a, b, c):
        item(page, sid).get_by_test_id("conversation-open").click()
    expect(item(page, c)).to_have_attribute("aria-current", "true")
    expect(page.get_by_test_id("sync-status")).to_have_attribute("data-state", "synced")
    assert user.active_id() == c

    # Forced overlap: hold the first switch at the network; later clicks must wait behind it
    # and only the newest goes out after it.
    held: list[Any] = []
    sent: list[str] = []

    def hold_first(route: Any) -> None:
        if route.request.method == "POST":
            sent.append(route.request.post_data_json["id"])
            if not held:
                held.append(route)
                return
        route.continue_()

    page.route(SESSION, hold_first)
    item(page, a).get_by_test_id("conversation-open").click()
    expect(item(page, a)).to_have_attribute("data-loading", "true")
    wait_until(lambda: held, message="first switch held")
    item(page, b).get_by_test_id("conversation-open").click()
    item(page, x).get_by_test_id("conversation-open").click()
    item(page, b).get_by_test_id("conversation-open").click()
    expect(item(page, b)).to_have_attribute("aria-current", "true")
    expect(item(page, b)).to_have_attribute("data-loading", "true")
    expect(item(page, a)).to_have_attribute("data-loading", "false")
    assert sent == [a], "only one switch in flight"
    held[0].continue_()
    expect(page.get_by_test_id("sync-status")).to_have_attribute("data-state", "synced")
    assert sent == [a, b], sent
    assert user.active_id() == b
    expect(current(page)).to_have_attribute("data-id", b)
    no_page_errors(page)


def test_api_failure_keeps_local_choice_then_retry_syncs(
    open_app: Any, user: UserApi, expect: Any
) -> None:
    a, b, c = three(user)
    page = open_app(user)
    sync = page.get_by_test_id("sync-status")

    def fail(route: Any) -> None:
        if route.request.method == "POST":
            route.fulfill(
                status=503,
                content_type="application/json",
                body='{"error": "service unavailable", "code": "unavailable"}',
            )
        else:
            route.continue_()

    page.route(SESSION, fail)
    item(page, b).get_by_test_id("conversation-open").click()
    expect(item(page, b)).to_have_attribute("aria-current", "true")  # the local choice stays
    expect(sync).to_have_attribute("data-state", "error")
    expect(sync).to_contain_text("Not synced")
    expect(sync).to_contain_text("service unavailable")
    expect(item(page, b)).to_have_attribute("data-sync", "pending")
    expect(page.get_by_test_id("sync-retry")).to_be_visible()
    assert user.active_id() == a, "the database still has A"
    assert page.evaluate("typeof window.alert") == "function"

    # The API is back: the manual retry makes the database match.
    page.unroute(SESSION)
    page.get_by_test_id("sync-retry").click()
    expect(sync).to_have_attribute("data-state", "synced")
    assert user.active_id() == b
    expect(item(page, b)).to_have_attribute("data-sync", "ok")

    # Network failure this time, and the automatic retry (with backoff) heals it.
    page.route(
        SESSION, lambda r: r.abort("failed") if r.request.method == "POST" else r.continue_()
    )
    item(page, c).get_by_test_id("conversation-open").click()
    expect(sync).to_contain_text("Not synced")
    expect(sync).to_contain_text("retrying in")
    assert user.active_id() == b
    page.unroute(SESSION)
    expect(sync).to_have_attribute("data-state", "synced")
    assert user.active_id() == c
    expect(item(page, c)).to_have_attribute("aria-current", "true")
    no_page_errors(page)


def test_conversation_deleted_elsewhere_leaves_with_notice(
    open_app: Any, user: UserApi, expect: Any
) -> None:
    _a, b, _c = three(user)
    page = open_app(user)
    user.delete(b)  # from another device
    item(page, b).get_by_test_id("conversation-open").click()
    expect(item(page, b)).to_have_count(0)
    expect(page.get_by_test_id("notice")).to_contain_text("Bravo")
    expect(page.get_by_test_id("notice")).to_contain_text("deleted")
    expect(page.get_by_test_id("conversation-item")).to_have_count(2)
    page.get_by_test_id("notice-dismiss").click()
    expect(page.get_by_test_id("notice")).to_be_hidden()
    no_page_errors(page)


# ---- rename, delete, load more ---------------------------------------------------------


def test_rename_inline_and_rollback_when_refused(open_app: Any, user: UserApi, expect: Any) -> None:
    a, b, c = three(user)
    page = open_app(user)
    row = item(page, b)
    row.hover()
    row.get_by_test_id("rename-button").click()
    field = row.get_by_test_id("rename-input")
    expect(field).to_be_focused()
    field.fill("x" * 256)
    field.press("Enter")
    # Refused by the server (400): the old title comes back, with a visible reason.
    expect(row.get_by_test_id("conversation-title")).to_have_text("Bravo")
    expect(row.get_by_test_id("conversation-error")).to_contain_text("Rename failed")
    expect(page.get_by_test_id("error-toast")).to_be_visible()
    r = user.get(b)
    assert r.status_code == 200 and r.json()["session"]["title"] == "Bravo"

    # A rename the server accepts sticks; Escape cancels.
    row.hover()
    row.get_by_test_id("rename-button").click()
    row.get_by_test_id("rename-input").fill("Bravo, renamed")
    row.get_by_test_id("rename-input").press("Enter")
    expect(row.get_by_test_id("conversation-title")).to_have_text("Bravo, renamed")
    expect(row.get_by_test_id("conversation-error")).to_be_hidden()
    wait_until(
        lambda: user.get(b).json()["session"]["title"] == "Bravo, renamed", message="title saved"
    )
    row.get_by_test_id("conversation-open").focus()
    page.keyboard.press("F2")
    row.get_by_test_id("rename-input").fill("never saved")
    row.get_by_test_id("rename-input").press("Escape")
    expect(row.get_by_test_id("conversation-title")).to_have_text("Bravo, renamed")
    # Renames never reorder the list.
    ids = page.get_by_test_id("conversation-item").evaluate_all("els => els.map(e => e.dataset.id)")
    assert ids == [c, b, a]
    no_page_errors(page)


def test_delete_with_confirmation_and_undo(open_app: Any, user: UserApi, expect: Any) -> None:
    a, b, c = three(user)
    page = open_app(user, config={"deleteUndoMs": 60_000})
    dialog = page.get_by_test_id("confirm-dialog")

    item(page, b).hover()
    item(page, b).get_by_test_id("delete-button").click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Bravo")
    page.get_by_test_id("cancel-delete").click()
    expect(dialog).to_be_hidden()
    expect(item(page, b)).to_have_count(1)

    # Confirm, then undo inside the window: nothing reaches the server.
    item(page, b).hover()
    item(page, b).get_by_test_id("delete-button").click()
    page.get_by_test_id("confirm-delete").click()
    expect(item(page, b)).to_have_count(0)
    toast = page.locator(f'[data-testid="undo-toast"][data-id="{b}"]')
    expect(toast).to_be_visible()
    toast.get_by_test_id("undo-button").click()
    expect(item(page, b)).to_have_count(1)
    expect(toast).to_have_count(0)
    assert user.get(b).status_code == 200

    # Delete the open conversation; closing the toast deletes at once; the neighbour opens.
    expect(item(page, a)).to_have_attribute("aria-current", "true")
    page.get_by_test_id("pane-delete").click()
    page.get_by_test_id("confirm-delete").click()
    expect(item(page, a)).to_have_count(0)
    expect(item(page, b)).to_have_attribute("aria-current", "true")
    page.locator(f'[data-testid="undo-toast"][data-id="{a}"]').get_by_test_id(
        "toast-dismiss"
    ).click()
    wait_until(lambda: user.get(a).status_code == 404, message="A deleted in the database")
    wait_until(lambda: user.active_id() == b, message="B active")
    assert [s["id"] for s in user.sessions()["sessions"]] == [c, b]
    no_page_errors(page)


def test_undo_window_then_delete_is_sent(open_app: Any, user: UserApi, expect: Any) -> None:
    _a, _b, c = three(user)
    page = open_app(user, config={"deleteUndoMs": 700})
    item(page, c).hover()
    item(page, c).get_by_test_id("delete-button").click()
    page.get_by_test_id("confirm-delete").click()
    expect(item(page, c)).to_have_count(0)
    expect(page.get_by_test_id("undo-toast")).to_have_count(0)  # the window closed by itself
    wait_until(lambda: user.get(c).status_code == 404, message="C deleted after the undo window")


def test_deletes_pending_at_sign_out_are_sent_with_that_users_token(
    open_app: Any, user: UserApi, expect: Any
) -> None:
    """Sign-out inside the undo window sends the deletes at once, with the token of the user who
    made them, also the one that waits for its conversation's create while someone else signs in."""
    _a, _b, c = three(user)
    page = open_app(user, config={"deleteUndoMs": 60_000})
    held: list[Any] = []

    def hold_creates(route: Any) -> None:
        if route.request.method == "POST":
            held.append(route)
        else:
            route.continue_()

    page.route(SESSIONS, hold_creates)
    item(page, c).hover()
    item(page, c).get_by_test_id("delete-button").click()
    page.get_by_test_id("confirm-delete").click()
    expect(item(page, c)).to_have_count(0)
    # A new conversation, deleted while its create is still on its way.
    with page.expect_request(lambda r: r.method == "POST" and SESSIONS(r.url)) as create:
        page.get_by_test_id("new-conversation").click()
    new_id = create.value.post_data_json["id"]
    expect(item(page, new_id)).to_have_attribute("aria-current", "true")
    page.get_by_test_id("pane-delete").click()
    page.get_by_test_id("confirm-delete").click()
    expect(item(page, new_id)).to_have_count(0)

    with page.expect_response(lambda r: r.request.method == "DELETE") as deleted:
        page.get_by_test_id("sign-out").click()
    assert deleted.value.request.headers.get("authorization") == f"Bearer {user.token}"
    assert deleted.value.status == 200, deleted.value.text()
    assert user.get(c).status_code == 404

    # Someone else signs in; then the held create lands: its delete still goes out as `user`.
    expect(page.get_by_test_id("signin-form")).to_be_visible()
    page.get_by_test_id("signin-name").fill(f"next-{user.name}")
    page.get_by_test_id("signin-submit").click()
    expect(page.get_by_test_id("sync-status")).to_have_attribute("data-state", "synced")
    assert len(held) == 1
    with page.expect_response(lambda r: r.request.method == "DELETE" and new_id in r.url) as late:
        held[0].continue_()
    page.unroute(SESSIONS)
    assert late.value.request.headers.get("authorization") == f"Bearer {user.token}"
    assert late.value.status == 200, late.value.text()
    assert user.get(new_id).status_code == 404
    expect(page.get_by_test_id("conversation-item")).to_have_count(0)
    no_page_errors(page)


def test_load_more_uses_the_cursor(open_app: Any, user: UserApi, expect: Any) -> None:
    ids = [user.create(f"Conversation {i:02d}")["id"] for i in range(53)]
    page = open_app(user)
    items = page.get_by_test_id("conversation-item")
    expect(items).to_have_count(50)
    seen = []
    page.on("request", lambda r: seen.append(r.url) if "/api/chat/sessions" in r.url else None)
    page.get_by_test_id("load-more").click()
    expect(items).to_have_count(53)
    expect(page.get_by_test_id("load-more")).to_be_hidden()
    assert any("cursor=" in u for u in seen), seen
    shown = items.evaluate_all("els => els.map(e => e.dataset.id)")
    assert shown == list(reversed(ids))  # newest first, no gaps, no duplicates
    no_page_errors(page)


# ---- reload, devices -------------------------------------------------------------------


def test_reload_shows_saved_state_at_once_then_the_server_wins(
    open_app: Any, user: UserApi, expect: Any
) -> None:
    _a, b, c = three(user)
    page = open_app(user)
    item(page, b).get_by_test_id("conversation-open").click()
    expect(page.get_by_test_id("sync-status")).to_have_attribute("data-state", "synced")
    wait_until(lambda: user.active_id() == b, message="B active")

    # Meanwhile, another device: a new conversation D, and C becomes active.
    d = user.create("Delta")["id"]
    user.update(c, is_active=True)

    held: list[Any] = []
    page.route(
        SESSIONS,
        lambda route: held.append(route) if route.request.method == "GET" else route.continue_(),
    )
    page.reload()
    # Before the server answers: the saved list and choice are already on screen.
    expect(page.get_by_test_id("conversation-item")).to_have_count(3)
    expect(item(page, b)).to_have_attribute("aria-current", "true")
    expect(page.get_by_test_id("sync-status")).to_have_attribute("data-state", "syncing")
    wait_until(lambda: held, message="list request held")
    assert item(page, d).count() == 0
    # Then the server answers and wins.
    for route in held:
        route.continue_()
    page.unroute(SESSIONS)
    expect(item(page, d)).to_have_count(1)
    expect(item(page, c)).to_have_attribute("aria-current", "true")
    expect(page.get_by_test_id("sync-status")).to_have_attribute("data-state", "synced")
    shown = page.get_by_test_id("conversation-item").evaluate_all(
        "els => els.map(e => e.dataset.id)"
    )
    assert shown == [s["id"] for s in user.sessions()["sessions"]]
    no_page_errors(page)


def test_two_devices_same_user(open_app: Any, user: UserApi, expect: Any) -> None:
    a, _b, c = three(user)
    one = open_app(user)
    two = open_app(user)
    item(one, c).get_by_test_id("conversation-open").click()
    wait_until(lambda: user.active_id() == c, message="C active")
    two.reload()
    expect(item(two, c)).to_have_attribute("aria-current", "true")
    expect(two.get_by_test_id("sync-status")).to_have_attribute("data-state", "synced")

    # Device two keeps its own active conversation from now on.
    two.get_by_test_id("device-mode-toggle").check(force=True)
    expect(two.get_by_test_id("sync-status")).to_have_attribute("data-state", "synced")
    device_id = two.evaluate("localStorage.getItem('chatsessions:device-id')")
    scope = f"device-{device_id}"
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}", scope)
    # A new device scope starts from what was open.
    wait_until(lambda: user.active_id(scope=scope) == c, message="device scope adopted C")
    item(two, a).get_by_test_id("conversation-open").click()
    wait_until(lambda: user.active_id(scope=scope) == a, message="A active for the device")
    expect(two.get_by_test_id("sync-status")).to_have_attribute("data-state", "synced")
    assert user.active_id() == c, "the account's active conversation is untouched"

    one.reload()
    expect(item(one, c)).to_have_attribute("aria-current", "true")
    two.reload()
    expect(item(two, a)).to_have_attribute("aria-current", "true")
    expect(two.get_by_test_id("device-mode-toggle")).to_be_checked()
    no_page_errors(one)
    no_page_errors(two)


# ---- messages --------------------------------------------------------------------------


def test_message_stays_in_its_conversation_after_switching_away(
    open_app: Any, user: UserApi, expect: Any
) -> None:
    a, b, c = three(user)
    user.post(a, "Earlier question")
    page = open_app(user)
    expect(page.get_by_test_id("message")).to_have_count(1)

    held: list[Any] = []
    page.route(
        MESSAGES,
        lambda route: held.append(route) if route.request.method == "POST" else route.continue_(),
    )
    composer = page.get_by_test_id("composer-input")
    composer.fill("What about the second point?")
    composer.press("Enter")
    sending = page.locator('[data-testid="message"][data-status="sending"]')
    expect(sending).to_contain_text("What about the second point?")
    wait_until(lambda: held, message="message request held")

    item(page, b).get_by_test_id("conversation-open").click()  # switch away before the answer
    expect(page.get_by_test_id("conversation-header-title")).to_have_text("Bravo")
    for route in held:
        route.continue_()
    page.unroute(MESSAGES)
    wait_until(lambda: len(user.messages(a)) == 2, message="message stored in A")
    assert [m["content"] for m in user.messages(a)] == [
        "Earlier question",
        "What about the second point?",
    ]
    assert user.messages(b) == []
    expect(item(page, a).get_by_test_id("conversation-preview")).to_have_text(
        "What about the second point?"
    )
    expect(page.get_by_test_id("message")).to_have_count(0)  # B's pane stays empty

    # A reply for A that arrives while B is open lands in A, not in B.
    user.post(a, "Here is the answer.", role="assistant", model="demo-model")
    item(page, c).get_by_test_id("conversation-open").click()
    expect(page.get_by_test_id("message")).to_have_count(0)
    item(page, a).get_by_test_id("conversation-open").click()
    expect(page.get_by_test_id("message")).to_have_count(3)
    expect(page.locator('[data-testid="message"][data-role="assistant"]')).to_contain_text(
        "Here is the answer."
    )
    expect(page.locator('[data-testid="message"][data-status="saved"]')).to_have_count(3)
    wait_until(lambda: user.active_id() == a, message="A active")
    no_page_errors(page)


def test_composer_creates_and_names_a_conversation(
    open_app: Any, user: UserApi, expect: Any
) -> None:
    page = open_app(user)
    expect(page.get_by_test_id("list-empty")).to_be_visible()
    page.get_by_test_id("composer-input").fill("Plan a weekend in Porto\nwith two kids")
    page.get_by_test_id("composer-send").click()
    row = page.get_by_test_id("conversation-item")
    expect(row).to_have_count(1)
    expect(row.get_by_test_id("conversation-title")).to_have_text("Plan a weekend in Porto")
    expect(row.get_by_test_id("conversation-count")).to_have_text("1")
    sessions = wait_until(
        lambda: (s := user.sessions())["sessions"] and s["sessions"][0]["message_count"] == 1 and s,
        message="session with one message",
    )
    sid = sessions["sessions"][0]["id"]
    assert sessions["active_session_id"] == sid
    wait_until(
        lambda: user.get(sid).json()["session"]["title"] == "Plan a weekend in Porto",
        message="title saved",
    )
    assert user.messages(sid)[0]["content"] == "Plan a weekend in Porto\nwith two kids"

    page.get_by_test_id("new-conversation").click()
    expect(row).to_have_count(2)
    expect(current(page)).not_to_have_attribute("data-id", sid)
    wait_until(lambda: user.active_id() not in (None, sid), message="new one active")
    no_page_errors(page)


# ---- layout and the screenshot ---------------------------------------------------------


def test_narrow_screen_stacks_the_list_above_the_conversation(
    open_app: Any, user: UserApi, expect: Any
) -> None:
    _a, b, _c = three(user)
    user.create("A much longer title than fits on a phone screen, so it has to be cut short")
    page = open_app(user, viewport={"width": 390, "height": 800})
    sidebar = page.get_by_test_id("sidebar").bounding_box()
    pane = page.get_by_test_id("conversation-pane").bounding_box()
    assert sidebar and pane
    assert sidebar["y"] + sidebar["height"] <= pane["y"] + 1, (sidebar, pane)
    assert sidebar["width"] >= 380 and pane["width"] >= 380
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.get_by_test_id("collapse-toggle").click()
    expect(page.get_by_test_id("conversation-list")).to_be_hidden()
    page.get_by_test_id("collapse-toggle").click()
    item(page, b).get_by_test_id("conversation-open").click()
    expect(page.get_by_test_id("conversation-list")).to_be_hidden()  # collapses after a pick
    expect(page.get_by_test_id("conversation-header-title")).to_have_text("Bravo")
    wait_until(lambda: user.active_id() == b, message="B active")


# (title, [(role, content)]) for the screenshot: the first one is open.
SCREENSHOT_CHATS = [
    (
        "Weekend trip to Lisbon",
        [
            (
                "user",
                "Plan a relaxed three-day weekend in Lisbon. We like food, views and short walks.",
            ),
            (
                "assistant",
                "Day 1: Alfama in the morning, lunch at a tasca, "
                "the Miradouro da Senhora do Monte at sunset.\n"
                "Day 2: Belém: the tower, the monastery and pastéis de nata.\n"
                "Day 3: A slow morning in Príncipe Real, then the LX Factory.",
            ),
            ("user", "Swap day 3 for a day trip to Sintra?"),
            (
                "assistant",
                "Sure: take the train from Rossio (40 min), see Pena Palace first, "
                "then Quinta da Regaleira, and come back for dinner in Bairro Alto.",
            ),
        ],
    ),
    (
        "Postgres index for the sessions list",
        [
            (
                "user",
                "Which index makes ORDER BY last_message_at DESC, id DESC "
                "with a keyset cursor fast?",
            ),
            (
                "assistant",
                "A composite B-tree on (user_id, last_message_at DESC, id DESC) "
                "serves the filter, the order and the cursor in one index scan.",
            ),
        ],
    ),
    (
        "Birthday gift ideas",
        [
            ("user", "Ideas for a friend who loves climbing and coffee?"),
            (
                "assistant",
                "A hand grinder, a chalk bag with a coffee pattern, or a day pass at a new gym.",
            ),
        ],
    ),
    (
        "Rust lifetimes question",
        [("user", "Why does the borrow checker reject returning a reference to a local?")],
    ),
]


def test_screenshot(open_app: Any, make_user: Any, expect: Any) -> None:
    user = make_user("Dana")
    chats = SCREENSHOT_CHATS
    ids = []
    for title, messages in reversed(chats):  # the first one gets the newest messages
        sid = user.create(title)["id"]
        for role, content in messages:
            extra = {"model": "gpt-4o"} if role == "assistant" else {}
            user.post(sid, content, role=role, **extra)
        ids.append(sid)
    lisbon = ids[-1]
    user.update(lisbon, is_active=True)
    page = open_app(user)
    expect(item(page, lisbon)).to_have_attribute("aria-current", "true")
    expect(page.get_by_test_id("message")).to_have_count(4)
    page.mouse.move(0, 799)
    out = REPO / "docs" / "screenshot.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out))
    assert Path(out).stat().st_size > 10_000
    no_page_errors(page)
