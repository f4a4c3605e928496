"""Unit tests of the client store (src/chatsessions/web/store.js), run in Chromium.

The JavaScript tests live in js/store_unit.js. They need no server: the page is served from a
made-up origin by request interception, the store gets a fake fetch and a fake clock, and
each JavaScript test is reported here as its own pytest test.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import WEB_DIR

HERE = Path(__file__).resolve().parent
UNIT_JS = HERE / "js" / "store_unit.js"
ORIGIN = "http://store.test"
NAMES = re.findall(r'^test\(\s*"((?:[^"\\]|\\.)*)"', UNIT_JS.read_text(), flags=re.M)


def _serve(route: Any) -> None:
    path = route.request.url[len(ORIGIN) :].split("?")[0]
    if path.startswith("/__tests__/"):
        file = HERE / "js" / path[len("/__tests__/") :]
    elif path == "/":
        route.fulfill(
            status=200, content_type="text/html", body="<!doctype html><title>store tests</title>"
        )
        return
    else:
        file = WEB_DIR / path.lstrip("/")
    if not file.is_file():
        route.fulfill(status=404, body="not found")
        return
    ctype = (
        "text/javascript"
        if file.suffix == ".js"
        else (mimetypes.guess_type(file.name)[0] or "text/plain")
    )
    route.fulfill(status=200, content_type=ctype, body=file.read_bytes())


@pytest.fixture(scope="module")
def results(browser: Any) -> Iterator[dict[str, dict[str, Any]]]:
    page = browser.new_page()
    try:
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.route(f"{ORIGIN}/**", _serve)
        page.goto(f"{ORIGIN}/")
        out = page.evaluate("async () => (await import('/__tests__/store_unit.js')).run()")
        assert not errors, errors
    finally:
        page.close()
    yield {r["name"]: r for r in out}


def test_all_unit_tests_were_found(results: dict[str, dict[str, Any]]) -> None:
    assert len(NAMES) >= 10
    assert set(results) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_store(results: dict[str, dict[str, Any]], name: str) -> None:
    r = results[name]
    assert r["ok"], r["error"]
