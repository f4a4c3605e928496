"""The command line: a thin shell over the same code the HTTP service uses.

chatsessions serve [--host H] [--port P] [--data-dir D] [--database-url URL]
chatsessions migrate [--data-dir D] [--database-url URL]
chatsessions token NAME [--data-dir D]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from chatsessions.auth import TokenAuthority, user_id_for_name
from chatsessions.config import Settings


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("host", "port", "data_dir", "database_url"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return Settings(**overrides)


def _database_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    from chatsessions.db.embedded import start_embedded

    return start_embedded(settings.data_dir)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from chatsessions.app import create_app

    settings = _settings(args)
    url = _database_url(settings)
    app = create_app(settings, database_url=url)
    where = "embedded PostgreSQL in " + str(settings.data_dir) if not settings.database_url else url
    print(
        f"chatsessions on http://{settings.host}:{settings.port}/ (database: {where})", flush=True
    )
    if app.state.authority.dev_sign_in:
        print("development sign-in is on: anyone can sign in as any name", flush=True)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it; with the default handler the
    # process would die before its exit hooks, which stop the embedded PostgreSQL.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level)
    return 0


def migrate(args: argparse.Namespace) -> int:
    from chatsessions.db.migrate import migrate_url

    settings = _settings(args)
    applied = asyncio.run(migrate_url(_database_url(settings)))
    print("applied: " + ", ".join(applied) if applied else "already up to date")
    return 0


def token(args: argparse.Namespace) -> int:
    settings = _settings(args)
    authority = TokenAuthority(settings)
    if authority.secret is None:
        print("this server verifies tokens with a JWKS only; it cannot issue them", file=sys.stderr)
        return 1
    user_id = user_id_for_name(args.name)
    print(authority.issue(user_id, name=args.name, ttl=args.ttl))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatsessions", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", type=Path, help="data directory (default .chatsessions)")
        p.add_argument("--database-url", help="PostgreSQL URL (default: embedded PostgreSQL)")

    p = sub.add_parser("serve", help="run the HTTP service")
    common(p)
    p.add_argument("--host", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default 8000)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=serve)

    p = sub.add_parser("migrate", help="apply pending database migrations")
    common(p)
    p.set_defaults(func=migrate)

    p = sub.add_parser("token", help="print an access token for the user behind NAME")
    p.add_argument("name", help="a name (mapped to a stable user id) or a user UUID")
    p.add_argument(
        "--data-dir", type=Path, help="data directory of the server (default .chatsessions)"
    )
    p.add_argument("--ttl", type=int, default=None, help="lifetime in seconds (default 7 days)")
    p.set_defaults(func=token)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result
