"""Dependencies shared by the routes: the caller, the database, and the caller's transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Query, Request

from chatsessions.auth import TokenAuthority, User
from chatsessions.db.database import Database, UserConnection
from chatsessions.errors import Unauthorized
from chatsessions.models import SCOPE_PATTERN


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_authority(request: Request) -> TokenAuthority:
    authority: TokenAuthority = request.app.state.authority
    return authority


def get_current_user(
    request: Request, authority: Annotated[TokenAuthority, Depends(get_authority)]
) -> User:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token")
    return authority.verify(token.strip())


Db = Annotated[Database, Depends(get_db)]
Authority = Annotated[TokenAuthority, Depends(get_authority)]
CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_user_conn(db: Db, user: CurrentUser) -> AsyncIterator[UserConnection]:
    """A pooled connection acting as the caller, released before the response is sent."""
    async with db.as_user(user) as conn:
        yield conn


# scope="function": the connection (and any transaction on it) is done before the response goes
# out, so a client that got a 2xx sees its write on its next request, and an error is a response.
UserConn = Annotated[UserConnection, Depends(get_user_conn, scope="function")]
ScopeQuery = Annotated[
    str,
    Query(
        pattern=SCOPE_PATTERN,
        description="`account` (default: the whole account) or a client-chosen scope",
    ),
]
