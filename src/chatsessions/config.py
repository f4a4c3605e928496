"""Settings, read from the environment (prefix CHATSESSIONS_) and overridable by CLI flags."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHATSESSIONS_", extra="ignore")

    database_url: str | None = None
    """PostgreSQL URL (postgresql://user:pass@host:port/db). Unset: an embedded PostgreSQL is
    started in `data_dir`."""

    data_dir: Path = Path(".chatsessions")
    """Where the embedded PostgreSQL keeps its data and the server its generated JWT secret."""

    host: str = "127.0.0.1"
    """Address `chatsessions serve` listens on."""

    port: int = 8000
    """Port `chatsessions serve` listens on."""

    jwt_secret: SecretStr | None = None
    """HS256 secret for access tokens (a Supabase project's JWT secret works as is). Unset and no
    JWKS given: the server generates one in `data_dir` (development default)."""

    jwt_jwks_url: str | None = None
    """URL of a JWKS with the public keys of asymmetric access tokens (RS256, ES256, EdDSA)."""

    jwt_jwks_file: Path | None = None
    """Path of a JWKS file, instead of a URL."""

    jwt_audience: str = "authenticated"
    """Required `aud` claim of access tokens (Supabase: `authenticated`)."""

    jwt_issuer: str | None = None
    """Required `iss` claim of access tokens, if set."""

    dev_sign_in: bool | None = None
    """Enable `POST /api/dev/token` (sign in as any name, no password). Default: on only when the
    server generated its own secret (nobody configured authentication). Not for production."""

    dev_token_ttl_seconds: int = Field(default=7 * 24 * 3600, gt=0)
    """Lifetime of tokens from `/api/dev/token` and `chatsessions token`."""

    max_body_bytes: int = Field(default=1_048_576, gt=0)
    """Largest request body accepted; larger ones get 413."""

    pool_min_size: int = Field(default=1, ge=0)
    """Fewest database connections kept open."""

    pool_max_size: int = Field(default=10, gt=0)
    """Most database connections opened."""

    lock_timeout_ms: int = Field(default=5000, ge=0)
    """How long a request waits for a lock held elsewhere (e.g. an open transaction in psql)
    before it gets 503 database_busy; 0 waits forever."""

    statement_timeout_ms: int = Field(default=15000, ge=0)
    """Longest a single statement may run; 0: no limit."""

    migrate_on_start: bool = True
    """Apply pending migrations when the service starts (under an advisory lock)."""

    @property
    def generated_secret_path(self) -> Path:
        return self.data_dir / "jwt_secret"
