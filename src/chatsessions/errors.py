"""The project's own errors: each has an HTTP status and a stable machine-readable code.

Routes and the data layer raise these; one exception handler in app.py turns them into
`{"error": message, "code": code}` responses. Nothing outside db/ sees a driver exception.
"""

from __future__ import annotations


class ChatSessionsError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidRequest(ChatSessionsError):
    status_code = 400
    code = "invalid_request"


class Unauthorized(ChatSessionsError):
    status_code = 401
    code = "unauthorized"


class NotFound(ChatSessionsError):
    status_code = 404
    code = "not_found"


class SessionNotFound(NotFound):
    """Also raised for another user's session: the two must be indistinguishable."""

    code = "session_not_found"

    def __init__(self, message: str = "session not found") -> None:
        super().__init__(message)


class Conflict(ChatSessionsError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(ChatSessionsError):
    status_code = 413
    code = "payload_too_large"


class DatabaseUnavailable(ChatSessionsError):
    status_code = 503
    code = "database_unavailable"
