"""Access tokens: verification of Supabase-style JWTs, and issuing them for development.

A token is accepted when it is signed with the configured HS256 secret or by a key of the
configured JWKS, has not expired (`exp` is required), carries the configured audience, and its
`sub` is a UUID: that UUID is the user. `alg: none` and any algorithm not tied to a configured key
are refused.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from chatsessions.config import Settings
from chatsessions.errors import Unauthorized

ASYMMETRIC_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]
USER_NAMESPACE = uuid.UUID("6f1c2b9e-8a47-4c1d-9a0e-3c5d7e2f4b61")


@dataclass(frozen=True, slots=True)
class User:
    id: uuid.UUID
    claims: dict[str, Any]


def user_id_for_name(name: str) -> uuid.UUID:
    """The stable user id behind a development sign-in name (a UUID stands for itself)."""
    try:
        return uuid.UUID(name)
    except ValueError:
        return uuid.uuid5(USER_NAMESPACE, name.strip().lower())


def load_or_create_secret(path: Path) -> str:
    """The server's own HS256 secret: generated on first use, kept (mode 0600) in the data dir."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    tmp.replace(path)
    return secret


class TokenAuthority:
    """Verifies access tokens; issues them too when it holds an HS256 secret."""

    def __init__(self, settings: Settings) -> None:
        self.audience = settings.jwt_audience
        self.issuer = settings.jwt_issuer
        self.generated_secret = False
        self._jwks: jwt.PyJWKSet | None = None
        self._jwks_client: jwt.PyJWKClient | None = None
        if settings.jwt_jwks_file is not None:
            self._jwks = jwt.PyJWKSet.from_dict(json.loads(settings.jwt_jwks_file.read_text()))
        if settings.jwt_jwks_url is not None:
            self._jwks_client = jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True)
        if settings.jwt_secret is not None:
            self.secret: str | None = settings.jwt_secret.get_secret_value()
        elif self._jwks is None and self._jwks_client is None:
            self.secret = load_or_create_secret(settings.generated_secret_path)
            self.generated_secret = True
        else:
            self.secret = None
        self.dev_sign_in = (
            settings.dev_sign_in if settings.dev_sign_in is not None else self.generated_secret
        )
        if self.dev_sign_in and self.secret is None:
            raise ValueError("dev sign-in needs an HS256 secret to sign its tokens")
        self.dev_token_ttl = settings.dev_token_ttl_seconds

    def verify(self, token: str) -> User:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("malformed access token") from exc
        alg = header.get("alg")
        key: Any
        if alg == "HS256" and self.secret is not None:
            key = self.secret
        elif alg in ASYMMETRIC_ALGORITHMS and (self._jwks or self._jwks_client):
            key = self._asymmetric_key(token, header)
        else:
            raise Unauthorized(f"access token algorithm {alg!r} is not accepted")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("access token expired", code="token_expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid access token: {exc}") from exc
        try:
            user_id = uuid.UUID(str(claims["sub"]))
        except ValueError as exc:
            raise Unauthorized("access token subject is not a user id") from exc
        # The canonical form: Python also accepts e.g. "urn:uuid:...", which ::uuid does not.
        return User(id=user_id, claims={**claims, "sub": str(user_id)})

    def _asymmetric_key(self, token: str, header: dict[str, Any]) -> Any:
        try:
            if self._jwks_client is not None:
                return self._jwks_client.get_signing_key_from_jwt(token).key
            assert self._jwks is not None
            kid = header.get("kid")
            for k in self._jwks.keys:
                if kid is None or k.key_id == kid:
                    return k.key
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"no key for access token: {exc}") from exc
        raise Unauthorized("no key for access token")

    def issue(self, user_id: uuid.UUID, *, ttl: int | None = None, name: str | None = None) -> str:
        """An HS256 access token for `user_id`, as Supabase would issue it."""
        if self.secret is None:
            raise ValueError("no HS256 secret configured: this server cannot issue tokens")
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": str(user_id),
            "aud": self.audience,
            "role": "authenticated",
            "iat": now,
            "exp": now + (ttl if ttl is not None else self.dev_token_ttl),
        }
        if self.issuer:
            claims["iss"] = self.issuer
        if name:
            claims["user_metadata"] = {"name": name}
        return jwt.encode(claims, self.secret, algorithm="HS256")
