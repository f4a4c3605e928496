"""Turns driver errors into the project's errors, by SQLSTATE."""

from __future__ import annotations

import asyncpg

from chatsessions import errors

# SQLSTATEs raised on purpose by the database functions (see migration 0004).
_BY_SQLSTATE: dict[str, type[errors.ChatSessionsError]] = {
    "CS404": errors.SessionNotFound,
    "28000": errors.Unauthorized,
}


def translate(exc: asyncpg.PostgresError) -> errors.ChatSessionsError:
    state = exc.sqlstate or ""
    message = getattr(exc, "message", None) or str(exc)
    if state in _BY_SQLSTATE:
        cls = _BY_SQLSTATE[state]
        return cls() if cls is errors.SessionNotFound else cls(message)
    if state == "42501":
        # The service never calls anything it lacks rights for: this means the login role cannot
        # become `authenticated` (see README, "Deploying against an existing PostgreSQL").
        return errors.DatabaseUnavailable(
            f"database permissions are misconfigured: {message}", code="database_misconfigured"
        )
    if state == "CS409":
        return errors.Conflict(message, code="message_id_conflict")
    if state == "23503":  # the session went away under a concurrent request
        return errors.SessionNotFound()
    if state == "22001":
        return errors.InvalidRequest(message, code="value_too_long")
    if state.startswith("22") or state.startswith("23"):
        # Data exceptions and integrity violations: bad values that got past request validation
        # (e.g. a NUL character, a number out of range, a failed check constraint).
        return errors.InvalidRequest(message)
    if state in ("40001", "40P01", "55P03", "57014"):
        return errors.DatabaseUnavailable(
            f"database busy, try again: {message}", code="database_busy"
        )
    return errors.ChatSessionsError(f"database error {state}: {message}")
