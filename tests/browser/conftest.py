"""Browser tests: a real `chatsessions serve` process on a real PostgreSQL, driven by Debian's
Chromium through Playwright (sync API).

The server is started once per run: on TEST_DATABASE_URL's server (in a database of its own,
dropped at the end) when that is set, else on an embedded PostgreSQL in a temporary directory.
CHATSESSIONS_BROWSER_BASE_URL points the tests at a server that is already running instead.
Every test signs in as a fresh user, so tests never see each other's data.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
WEB_DIR = REPO / "src" / "chatsessions" / "web"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.browser)


_SERVER_LOG: list[Path] = []  # the log of the server this run started, if any


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On a failure: attach the server log's tail, and screenshot the test's pages into
    test-artifacts/ (git-ignored)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when != "call" or not report.failed:
        return
    if _SERVER_LOG and _SERVER_LOG[0].exists():
        tail = _SERVER_LOG[0].read_text(errors="replace")[-3000:]
        report.sections.append(("chatsessions serve log (tail)", tail))
    contexts = getattr(item, "_chatsessions_contexts", [])
    out = REPO / "test-artifacts"
    n = 0
    for ctx in contexts:
        for page in ctx.pages:
            n += 1
            try:
                out.mkdir(exist_ok=True)
                page.screenshot(path=str(out / f"{item.name}-{n}.png"))
            except Exception:  # pragma: no cover - best effort only
                pass


def _skip_without_browser() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")


# ---- the server -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def _admin(url: str, sql: str) -> None:
    """Run one statement with asyncpg, in a thread of its own (pytest-asyncio may have an
    event loop running in this one)."""
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(60)
    if errors:
        raise errors[0]


def _wait_ready(base_url: str, proc: subprocess.Popen[bytes] | None, log: Path | None) -> None:
    deadline = time.monotonic() + 120
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-4000:] if log else ""
            raise RuntimeError(f"chatsessions serve exited with {proc.returncode}:\n{tail}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-4000:] if log else ""
    raise RuntimeError(f"server at {base_url} not ready after 120 s ({last}):\n{tail}")


@pytest.fixture(scope="session")
def base_url() -> Iterator[str]:
    """Base URL of a running chatsessions server with dev sign-in on."""
    _skip_without_browser()
    external = os.environ.get("CHATSESSIONS_BROWSER_BASE_URL")
    if external:
        _wait_ready(external.rstrip("/"), None, None)
        yield external.rstrip("/")
        return
    port = _free_port()
    tmp = Path(tempfile.mkdtemp(prefix="chatsessions-browser-"))
    log = tmp / "serve.log"
    cmd = [
        sys.executable,
        "-m",
        "chatsessions",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    env = {
        **os.environ,
        "CHATSESSIONS_DEV_SIGN_IN": "true",
        "CHATSESSIONS_JWT_SECRET": "browser-tests-" + secrets.token_hex(24),
    }
    admin_url = os.environ.get("TEST_DATABASE_URL")
    db_name = None
    if admin_url:
        db_name = f"chatsessions_browser_{os.getpid()}_{secrets.token_hex(4)}"
        _admin(admin_url, f'create database "{db_name}"')
        cmd += ["--database-url", _with_database(admin_url, db_name)]
    else:
        cmd += ["--data-dir", str(tmp / "data")]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp)
    url = f"http://127.0.0.1:{port}"
    _SERVER_LOG[:] = [log]
    try:
        _wait_ready(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if admin_url and db_name:
            try:
                _admin(admin_url, f'drop database if exists "{db_name}" with (force)')
            except Exception as exc:  # pragma: no cover - cleanup only
                print(f"could not drop {db_name}: {exc}", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)


# ---- the API, from the test's side ------------------------------------------------------


@dataclass
class UserApi:
    """One user's view of the API, to set up data and to check what the database holds."""

    base_url: str
    name: str
    token: str
    user_id: str
    client: httpx.Client = field(repr=False)

    def _check(self, r: httpx.Response) -> Any:
        if r.status_code >= 400:
            raise AssertionError(f"{r.request.method} {r.request.url} -> {r.status_code} {r.text}")
        return r.json()

    def create(
        self,
        title: str | None = None,
        *,
        active: bool | None = None,
        scope: str | None = None,
        id: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"id": id or str(uuid.uuid4())}
        if title is not None:
            body["title"] = title
        if active is not None:
            body["is_active"] = active
        if scope is not None:
            body["scope"] = scope
        return self._check(self.client.post("/api/chat/sessions", json=body))["session"]

    def update(self, id: str, **fields: Any) -> dict[str, Any]:
        return self._check(self.client.post("/api/chat/session", json={"id": id, **fields}))[
            "session"
        ]

    def get(self, id: str) -> httpx.Response:
        return self.client.get("/api/chat/session", params={"id": id})

    def sessions(self, *, scope: str | None = None, limit: int | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if scope:
            params["scope"] = scope
        if limit:
            params["limit"] = limit
        return self._check(self.client.get("/api/chat/sessions", params=params))

    def active_id(self, scope: str | None = None) -> str | None:
        return self.sessions(scope=scope)["active_session_id"]

    def delete(self, id: str) -> None:
        self._check(self.client.delete("/api/chat/sessions", params={"id": id}))

    def post(
        self, session_id: str, content: str, role: str = "user", **extra: Any
    ) -> dict[str, Any]:
        body = {"session_id": session_id, "message": {"role": role, "content": content, **extra}}
        return self._check(self.client.post("/api/chat/messages", json=body))

    def messages(self, session_id: str) -> list[dict[str, Any]]:
        return self._check(
            self.client.get("/api/chat/messages", params={"session_id": session_id})
        )["messages"]


def wait_until(
    check: Callable[[], Any], *, timeout: float = 10.0, message: str = "condition"
) -> Any:
    """Poll `check` (e.g. an API read) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message} (last: {last!r})")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def make_user(base_url: str) -> Iterator[Callable[[], UserApi]]:
    clients: list[httpx.Client] = []

    def make(name: str | None = None) -> UserApi:
        name = name or f"user-{uuid.uuid4().hex[:12]}"
        r = httpx.post(f"{base_url}/api/dev/token", json={"name": name}, timeout=10)
        assert r.status_code == 200, r.text
        data = r.json()
        client = httpx.Client(
            base_url=base_url,
            timeout=10,
            headers={"Authorization": f"Bearer {data['access_token']}"},
        )
        clients.append(client)
        return UserApi(base_url, name, data["access_token"], data["user_id"], client)

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def user(make_user: Callable[[], UserApi]) -> UserApi:
    """A fresh user (so a test sees only its own conversations)."""
    return make_user()


# ---- the browser ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium, per test module. Not per session: while Playwright's sync API is running, its
    event loop counts as running in this thread, which would break the async tests that pytest
    runs after these (tests/db, ...). One instance per thread at a time."""
    _skip_without_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


# Test-speed settings handed to the app the way an embedding page would.
FAST_CONFIG = {"retryBaseMs": 300, "retryMaxMs": 2000}


@pytest.fixture
def new_context(
    browser: Any, base_url: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Any]]:
    """Factory of browser contexts (each one is a separate device: its own localStorage)."""
    from playwright.sync_api import expect

    expect.set_options(timeout=10_000)
    contexts: list[Any] = []
    request.node._chatsessions_contexts = contexts

    def make(
        *, viewport: dict[str, int] | None = None, config: dict[str, Any] | None = None
    ) -> Any:
        import json

        ctx = browser.new_context(
            base_url=base_url,
            viewport=viewport or {"width": 1280, "height": 800},
            locale="en-US",
            timezone_id="UTC",
        )
        ctx.set_default_timeout(10_000)
        ctx.add_init_script(
            f"window.CHATSESSIONS_CONFIG = {json.dumps({**FAST_CONFIG, **(config or {})})};"
        )
        contexts.append(ctx)
        return ctx

    yield make
    for ctx in contexts:
        ctx.close()


def _collect_errors(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on(
        "console",
        lambda m: errors.append(f"console.error: {m.text}") if m.type == "error" else None,
    )
    return errors


@pytest.fixture
def open_app(new_context: Callable[..., Any]) -> Callable[..., Any]:
    """Open the app signed in as `user` (token handed in the URL fragment); waits for the first
    sync with the server."""
    from playwright.sync_api import expect

    def open_(
        user: UserApi, *, context: Any = None, wait_synced: bool = True, **ctx_kwargs: Any
    ) -> Any:
        ctx = context or new_context(**ctx_kwargs)
        page = ctx.new_page()
        page.js_errors = _collect_errors(page)  # type: ignore[attr-defined]
        page.goto(f"/#access_token={user.token}")
        if wait_synced:
            expect(page.get_by_test_id("sync-status")).to_have_attribute("data-state", "synced")
        return page

    return open_


@pytest.fixture
def expect() -> Any:
    from playwright.sync_api import expect as _expect

    return _expect
