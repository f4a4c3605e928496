"""What the web app needs to sign in; the development-only token endpoint."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from chatsessions.api.deps import Authority
from chatsessions.auth import user_id_for_name
from chatsessions.errors import NotFound
from chatsessions.models import AuthConfigPublic, DevTokenRequest, TokenPublic

router = APIRouter(prefix="/api", tags=["auth"])


@router.get("/auth/config", response_model=AuthConfigPublic)
async def auth_config(authority: Authority) -> Any:
    """Whether this server offers development sign-in."""
    return {"dev_sign_in": authority.dev_sign_in}


@router.post("/dev/token", response_model=TokenPublic)
async def dev_token(authority: Authority, body: DevTokenRequest) -> Any:
    """Development only: a token for the user behind NAME, no password. Absent (404) when an
    operator configured authentication, unless they enabled it explicitly."""
    if not authority.dev_sign_in:
        raise NotFound("not found")
    user_id = user_id_for_name(body.name)
    return {
        "access_token": authority.issue(user_id, name=body.name),
        "token_type": "bearer",
        "user_id": user_id,
        "expires_in": authority.dev_token_ttl,
    }
