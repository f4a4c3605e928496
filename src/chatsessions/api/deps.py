"""Dependencies shared by the routes: the caller, the database, and the caller's transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Query, Request

from chatsessions.auth import TokenAuthority, User
from chatsessions.db.database import Database, UserTransaction
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


async def get_user_tx(db: Db, user: CurrentUser) -> AsyncIterator[UserTransaction]:
    """The caller's transaction; it commits after the route returns, or rolls back on an error."""
    async with db.as_user(user) as tx:
        yield tx


# scope="function": the transaction commits before the response is sent, so a client that got a
# 2xx sees its write on its next request, and a failed commit is an error response, not silence.
Tx = Annotated[UserTransaction, Depends(get_user_tx, scope="function")]
ScopeQuery = Annotated[
    str,
    Query(
        pattern=SCOPE_PATTERN,
        description="`account` (default: the whole account) or a client-chosen scope",
    ),
]
