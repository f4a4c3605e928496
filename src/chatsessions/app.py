"""create_app(): routes, error handling, body limits and the web app."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatsessions import __version__
from chatsessions.api import auth, health, messages, sessions
from chatsessions.auth import TokenAuthority
from chatsessions.config import Settings
from chatsessions.db.database import Database
from chatsessions.db.migrate import migrate_url
from chatsessions.errors import ChatSessionsError, PayloadTooLarge
from chatsessions.models import ErrorPublic

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


def _error(
    status: int, message: str, code: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": message, "code": code}, status_code=status, headers=headers)


class BodyLimit:
    """Refuses request bodies over `limit` bytes with 413, whether announced or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = _error(413, f"request body over {self.limit} bytes", PayloadTooLarge.code)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.limit:
                    await too_large(scope, receive, send)
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # An HTTPException passes through FastAPI's body parsing unchanged.
                    raise StarletteHTTPException(413, f"request body over {self.limit} bytes")
            return message

        await self.app(scope, limited_receive, send)


class WebAppMount(Mount):
    """The web app at `/`, except under /api: there the router's own JSON 404 and 405 apply."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and (
            scope["path"] == "/api" or scope["path"].startswith("/api/")
        ):
            return Match.NONE, {}
        return super().matches(scope)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        if err.get("type") == "json_invalid":
            return "request body is not valid JSON"
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


def create_app(settings: Settings | None = None, *, database_url: str | None = None) -> FastAPI:
    settings = settings or Settings()
    dsn = database_url or settings.database_url
    if not dsn:
        raise ValueError("create_app needs a database URL (the CLI starts an embedded server)")
    authority = TokenAuthority(settings)
    db = Database(
        dsn,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        lock_timeout_ms=settings.lock_timeout_ms,
        statement_timeout_ms=settings.statement_timeout_ms,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            applied = await migrate_url(dsn)
            if applied:
                log.info("applied migrations %s", ", ".join(applied))
        await db.open()
        try:
            yield
        finally:
            await db.close()

    app = FastAPI(
        title="chatsessions",
        version=__version__,
        summary="Chat sessions in PostgreSQL with a correct active session per user and device.",
        lifespan=lifespan,
        responses={
            400: {"model": ErrorPublic},
            401: {"model": ErrorPublic},
            404: {"model": ErrorPublic},
        },
    )
    app.state.db = db
    app.state.authority = authority
    app.state.settings = settings

    @app.exception_handler(ChatSessionsError)
    async def project_error(request: Request, exc: ChatSessionsError) -> JSONResponse:
        if exc.status_code >= 500:
            log.error("%s: %s", exc.code, exc.message)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return _error(exc.status_code, exc.message, exc.code, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, _validation_message(exc), "invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return _error(exc.status_code, str(exc.detail), code, headers or None)

    def _allowed_methods(request: Request) -> list[str]:
        # Starlette names only the first route that serves the path; a path may have several.
        # Ask every route whether it would take the request with each method instead.
        allowed = []
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
            probe = {**request.scope, "method": method}
            for route in app.router.routes:
                match, _ = route.matches(probe)
                if match == Match.FULL and not isinstance(route, Mount):
                    allowed.append(method)
                    break
        return allowed or ["GET", "HEAD"]  # the web app's static files

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return _error(500, "internal error", "internal_error")

    for router in (health.router, auth.router, sessions.router, messages.router):
        app.include_router(router)

    web = Path(str(resources.files("chatsessions").joinpath("web")))
    app.router.routes.append(
        WebAppMount("/", StaticFiles(directory=web, html=True, check_dir=False), name="web")
    )

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app
