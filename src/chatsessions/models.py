"""Request and response models, named by role (SessionUpdate, SessionPublic, ...)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL characters: refuse them here with a clear message.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


MAX_METADATA_DEPTH = 32


def _no_nul_deep(value: Any, depth: int = 0) -> Any:
    # Bounded nesting: deeper JSON could be stored but not serialised back (nor usefully read).
    if depth > MAX_METADATA_DEPTH:
        raise ValueError(f"must not nest deeper than {MAX_METADATA_DEPTH} levels")
    if isinstance(value, str):
        return _no_nul(value)
    if isinstance(value, dict):
        for k, v in value.items():
            _no_nul(k)
            _no_nul_deep(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _no_nul_deep(v, depth + 1)
    return value


ID_PATTERN = r"^[A-Za-z0-9._:~-]{1,128}$"
SCOPE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"

ClientId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
"""A client-generated id: 1-128 characters from A-Z a-z 0-9 . _ : ~ -"""

Scope = Annotated[str, StringConstraints(pattern=SCOPE_PATTERN)]
"""`account` (default) or a client-chosen scope such as a device id."""

Title = Annotated[
    str,
    StringConstraints(max_length=255),
    AfterValidator(_no_nul),
    AfterValidator(_not_blank),
]
Text = Annotated[str, AfterValidator(_no_nul)]
Metadata = Annotated[dict[str, Any], AfterValidator(_no_nul_deep)]
TokenCount = Annotated[int, Field(ge=0, le=2_147_483_647)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SessionUpdate(_Strict):
    """POST /api/chat/session. The statistics fields of the original API are accepted and
    ignored: the database maintains them from the messages."""

    id: ClientId
    title: Title | None = None
    is_active: bool | None = None
    scope: Scope = "account"
    # Accepted for backward compatibility, ignored (kept exact by the database).
    message_count: Any = None
    total_tokens: Any = None
    last_model: Any = None
    last_message_preview: Any = None
    last_message_timestamp: Any = None


class SessionCreate(_Strict):
    id: ClientId | None = None
    title: Title | None = None
    is_active: bool = False
    scope: Scope = "account"


class MessageCreate(_Strict):
    id: ClientId | None = None
    role: Literal["user", "assistant", "system"]
    content: Text
    model: Annotated[str, StringConstraints(max_length=255), AfterValidator(_no_nul)] | None = None
    input_tokens: TokenCount | None = None
    output_tokens: TokenCount | None = None
    total_tokens: TokenCount | None = None
    error_message: Text | None = None
    metadata: Metadata | None = None


class MessagesCreate(_Strict):
    """Either `message` or `messages` (up to 1,000 per request)."""

    session_id: ClientId
    message: MessageCreate | None = None
    messages: Annotated[list[MessageCreate], Field(min_length=1, max_length=1000)] | None = None
    scope: Scope = "account"

    @model_validator(mode="after")
    def _distinct_ids(self) -> MessagesCreate:
        # A repeated id would be stored once and the other message silently dropped.
        ids = [m.id for m in self.messages or [] if m.id is not None]
        if len(ids) != len(set(ids)):
            raise ValueError("message ids must be distinct within one request")
        return self


class SessionPublic(BaseModel):
    id: str
    user_id: UUID
    title: str
    created_at: datetime
    updated_at: datetime
    last_activity: datetime
    message_count: int
    total_tokens: int
    last_model: str | None
    last_message_preview: str | None
    last_message_timestamp: datetime | None
    is_active: bool


class MessagePublic(BaseModel):
    id: str
    session_id: str
    seq: int
    role: str
    content: str
    model: str | None
    input_tokens: int
    output_tokens: int
    total_tokens: int
    error_message: str | None
    metadata: dict[str, Any]
    created_at: datetime


class SessionEnvelope(BaseModel):
    session: SessionPublic


class SessionChanged(BaseModel):
    session: SessionPublic
    success: bool = True


class SessionsPublic(BaseModel):
    sessions: list[SessionPublic]
    active_session_id: str | None
    next_cursor: str | None


class SessionDeleted(BaseModel):
    success: bool = True
    id: str


class MessagesPublic(BaseModel):
    messages: list[MessagePublic]
    next_after: int | None


class MessagesAppended(BaseModel):
    messages: list[MessagePublic]
    session: SessionPublic


class ErrorPublic(BaseModel):
    error: str
    code: str


class DevTokenRequest(_Strict):
    name: Annotated[
        str,
        StringConstraints(min_length=1, max_length=64, strip_whitespace=True),
        AfterValidator(_no_nul),
    ]


class TokenPublic(BaseModel):
    access_token: str
    token_type: str = "bearer"
    user_id: UUID
    expires_in: int


class AuthConfigPublic(BaseModel):
    dev_sign_in: bool
