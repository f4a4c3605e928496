"""Messages of a session: an append-only log ordered by a server-assigned sequence number."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from chatsessions.api.deps import UserConn
from chatsessions.errors import InvalidRequest, SessionNotFound
from chatsessions.models import ID_PATTERN, MessagesAppended, MessagesCreate, MessagesPublic

router = APIRouter(prefix="/api/chat", tags=["messages"])


@router.get("/messages", response_model=MessagesPublic)
async def list_messages(
    conn: UserConn,
    session_id: Annotated[str, Query(pattern=ID_PATTERN)],
    after: Annotated[
        int, Query(ge=0, description="return messages with seq greater than this")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    """Messages in sequence order; pass `next_after` back as `after` for the next page."""
    messages = await conn.list_messages(session_id, after, limit + 1)
    if messages is None:
        raise SessionNotFound()
    more = len(messages) > limit
    messages = messages[:limit]
    return {"messages": messages, "next_after": messages[-1]["seq"] if more else None}


@router.post("/messages", response_model=MessagesAppended, status_code=201)
async def append_messages(conn: UserConn, body: MessagesCreate) -> Any:
    """Append one message or a batch; client message ids make retries idempotent."""
    if (body.message is None) == (body.messages is None):
        raise InvalidRequest("give exactly one of `message` or `messages`")
    batch = [body.message] if body.message is not None else (body.messages or [])
    payload = [m.model_dump(exclude_none=True) for m in batch]
    return await conn.append_messages(body.session_id, payload, body.scope)
