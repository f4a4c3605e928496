"""Chat sessions: the plan's /api/chat/session, plus the collection /api/chat/sessions."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from chatsessions.api.deps import ScopeQuery, UserConn
from chatsessions.errors import InvalidRequest, SessionNotFound
from chatsessions.models import (
    ID_PATTERN,
    SessionChanged,
    SessionCreate,
    SessionDeleted,
    SessionEnvelope,
    SessionsPublic,
    SessionUpdate,
)

router = APIRouter(prefix="/api/chat", tags=["sessions"])

IdQuery = Annotated[str, Query(pattern=ID_PATTERN, description="session id")]


def encode_cursor(after: tuple[datetime, str]) -> str:
    raw = json.dumps([after[0].isoformat(), after[1]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, session_id = json.loads(raw)
        parsed = datetime.fromisoformat(at)
        if not isinstance(session_id, str) or parsed.tzinfo is None:
            raise ValueError
        return parsed.astimezone(UTC), session_id
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidRequest("invalid cursor", code="invalid_cursor") from exc


@router.get("/session", response_model=SessionEnvelope)
async def get_session(conn: UserConn, id: IdQuery, scope: ScopeQuery = "account") -> Any:
    """One session of the caller; `is_active` is for `scope`."""
    session = await conn.get_session(id, scope)
    if session is None:
        raise SessionNotFound()
    return {"session": session}


@router.post("/session", response_model=SessionChanged)
async def update_session(conn: UserConn, body: SessionUpdate) -> Any:
    """Rename (`title`) and/or switch (`is_active`), atomically, in one transaction."""
    session = await conn.update_session(body.id, body.title, body.is_active, body.scope)
    return {"session": session, "success": True}


@router.get("/sessions", response_model=SessionsPublic)
async def list_sessions(
    conn: UserConn,
    scope: ScopeQuery = "account",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Any:
    """The caller's sessions, newest conversation first; keyset-paginated with `next_cursor`."""
    after = decode_cursor(cursor) if cursor else None
    sessions, active_id, next_after = await conn.list_sessions(scope, after, limit)
    return {
        "sessions": sessions,
        "active_session_id": active_id,
        "next_cursor": encode_cursor(next_after) if next_after else None,
    }


@router.post("/sessions", response_model=SessionChanged, status_code=201)
async def create_session(conn: UserConn, body: SessionCreate, response: Response) -> Any:
    """Create a session (201); the same id again returns the existing one (200)."""
    session = await conn.create_session(body.id, body.title, body.is_active, body.scope)
    if not session.pop("created"):
        response.status_code = 200
    return {"session": session, "success": True}


@router.delete("/sessions", response_model=SessionDeleted)
async def delete_session(conn: UserConn, id: IdQuery) -> Any:
    """Delete a session and its messages; if it was active, none is active afterwards."""
    await conn.delete_session(id)
    return {"success": True, "id": id}
