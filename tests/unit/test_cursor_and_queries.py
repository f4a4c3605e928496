"""Pure functions: the listing cursor and the named-query loader."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from chatsessions.api.sessions import decode_cursor, encode_cursor
from chatsessions.db import database
from chatsessions.db.queries import QUERIES, load_queries
from chatsessions.errors import InvalidRequest


@pytest.mark.parametrize(
    "at",
    [
        datetime(2024, 5, 17, 12, 30, 45, 123456, tzinfo=UTC),
        datetime(2024, 5, 17, 12, 30, 45, 1, tzinfo=UTC),
        datetime(2024, 5, 17, 12, 30, 45, 0, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2030, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    ],
)
@pytest.mark.parametrize("session_id", ["a", "A.b_c:d~e-9", "x" * 128, "00000000-0000-0000"])
def test_cursor_round_trip(at: datetime, session_id: str) -> None:
    cursor = encode_cursor((at, session_id))
    assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor), cursor  # URL-safe, no padding
    decoded_at, decoded_id = decode_cursor(cursor)
    assert decoded_at == at
    assert decoded_at.microsecond == at.microsecond
    # The same instant, normalised to UTC (so that no offset can push it out of range).
    assert decoded_at.utcoffset() == timedelta(0)
    assert decoded_id == session_id


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "not a cursor",
        "a",
        _b64(b"not json"),
        _b64(b"\xff\xfe\x00"),
        _b64(json.dumps(5).encode()),
        _b64(json.dumps("ab").encode()),
        _b64(json.dumps(None).encode()),
        _b64(json.dumps({"at": "2024-01-01T00:00:00+00:00", "id": "a"}).encode()),
        _b64(json.dumps(["2024-01-01T00:00:00+00:00"]).encode()),
        _b64(json.dumps(["2024-01-01T00:00:00+00:00", "a", "b"]).encode()),
        _b64(json.dumps(["2024-01-01T00:00:00+00:00", 5]).encode()),
        _b64(json.dumps(["2024-01-01T00:00:00+00:00", None]).encode()),
        _b64(json.dumps(["2024-01-01T00:00:00", "a"]).encode()),  # no time zone
        _b64(json.dumps(["tomorrow", "a"]).encode()),
        _b64(json.dumps([12345, "a"]).encode()),
        _b64(json.dumps([["2024"], "a"]).encode()),
    ],
)
def test_decode_garbage_raises_invalid_request(cursor: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        decode_cursor(cursor)
    assert info.value.status_code == 400
    assert info.value.code == "invalid_cursor"


def test_load_queries_splits_named_sections() -> None:
    text = (
        "-- a preamble that belongs to no query\n\n"
        "-- name: first --\n"
        "-- A comment of the first.\n"
        "select 1\n\n"
        "-- name: second_one --\n"
        "select *\n  from t\n where x = $1\n"
    )
    queries = load_queries(text)
    assert list(queries) == ["first", "second_one"]
    assert queries["first"] == "-- A comment of the first.\nselect 1"
    assert queries["second_one"] == "select *\n  from t\n where x = $1"


def test_load_queries_rejects_duplicates() -> None:
    text = "-- name: q --\nselect 1\n-- name: other --\nselect 2\n-- name: q --\nselect 3\n"
    with pytest.raises(ValueError, match="q"):
        load_queries(text)


def test_load_queries_of_nothing() -> None:
    assert load_queries("") == {}
    assert load_queries("-- just a comment\nselect 1\n") == {}


def test_header_must_be_a_whole_line() -> None:
    queries = load_queries("-- name: a --\nselect '-- name: b --'\n")
    assert list(queries) == ["a"]


def test_every_named_query_is_non_empty() -> None:
    assert QUERIES
    for name, sql in QUERIES.items():
        assert re.fullmatch(r"\w+", name)
        code = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
        assert code.strip(), f"query {name!r} has no SQL"


def test_every_query_the_data_layer_uses_exists() -> None:
    source = Path(database.__file__).read_text()
    used = set(re.findall(r"QUERIES\[\"(\w+)\"\]", source)) | set(
        re.findall(r"_val\(\s*\"(\w+)\"", source)
    )
    assert used, "found no query names in the data layer"
    assert used <= set(QUERIES), used - set(QUERIES)
