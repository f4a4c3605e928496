"""Authentication: every way a token can be wrong gets 401 JSON; valid HS256 and JWKS tokens work;
dev sign-in is only there when it should be."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from chatsessions.app import create_app
from chatsessions.auth import user_id_for_name
from chatsessions.config import Settings
from conftest import TEST_JWT_SECRET

PROTECTED = [
    ("GET", "/api/chat/session", {"params": {"id": "x"}}),
    ("POST", "/api/chat/session", {"json": {"id": "x", "title": "t"}}),
    ("GET", "/api/chat/sessions", {}),
    ("POST", "/api/chat/sessions", {"json": {"id": "x"}}),
    ("DELETE", "/api/chat/sessions", {"params": {"id": "x"}}),
    ("GET", "/api/chat/messages", {"params": {"session_id": "x"}}),
    (
        "POST",
        "/api/chat/messages",
        {"json": {"session_id": "x", "message": {"role": "user", "content": "c"}}},
    ),
]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(claims).encode())
    return f"{head}.{body}.{b64url(signature)}"


def claims_for(user_id: uuid.UUID | str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "aud": "authenticated",
        "role": "authenticated",
        "iat": now,
        "exp": now + 600,
    }
    for key, value in overrides.items():
        if value is None:
            claims.pop(key, None)
        else:
            claims[key] = value
    return claims


def hmac_token(alg: str, digest: Any, secret: str, claims: dict[str, Any]) -> str:
    signing_input = unsigned({"alg": alg, "typ": "JWT"}, claims).rstrip(".")
    signature = hmac.new(secret.encode(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(signature)}"


def hs256(secret: str, claims: dict[str, Any], **headers: Any) -> str:
    return jwt.encode(claims, secret, algorithm="HS256", headers=headers or None)


def assert_401(r: httpx.Response) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error", "code"}
    assert body["code"] in ("unauthorized", "token_expired")
    assert r.headers.get("www-authenticate", "").lower().startswith("bearer")


async def profile_exists(conn: Any, user_id: uuid.UUID) -> bool:
    return bool(
        await conn.fetchval(
            "select exists (select 1 from chatsessions.profiles where id = $1)", user_id
        )
    )


@asynccontextmanager
async def running(settings: Settings, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An app built from `settings`, started, with a client (no token)."""
    app = create_app(settings, database_url=database_url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- refused ------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "kwargs"), PROTECTED)
async def test_no_token_on_every_route(client, method: str, path: str, kwargs: dict) -> None:
    assert_401(await client.request(method, path, **kwargs))


def bad_tokens(secret: str) -> dict[str, dict[str, str]]:
    uid = uuid.uuid4()
    now = int(time.time())
    valid = hs256(secret, claims_for(uid))
    return {
        "basic scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
        "token without scheme": {"Authorization": valid},
        "bearer without token": {"Authorization": "Bearer "},
        "bearer only": {"Authorization": "Bearer"},
        "garbage": bearer("not-a-jwt"),
        "three garbage parts": bearer("a.b.c"),
        "truncated signature": bearer(valid[:-4]),
        "tampered claims": bearer(
            ".".join(
                [
                    valid.split(".")[0],
                    b64url(json.dumps(claims_for(uuid.uuid4())).encode()),
                    valid.split(".")[2],
                ]
            )
        ),
        "expired": bearer(hs256(secret, claims_for(uid, iat=now - 7200, exp=now - 3600))),
        "wrong secret": bearer(hs256("another-secret-" + "x" * 32, claims_for(uid))),
        "alg none": bearer(unsigned({"alg": "none", "typ": "JWT"}, claims_for(uid))),
        "alg None": bearer(unsigned({"alg": "None", "typ": "JWT"}, claims_for(uid))),
        "alg none with signature": bearer(
            unsigned({"alg": "none", "typ": "JWT"}, claims_for(uid), b"sig")
        ),
        "alg HS512": bearer(hmac_token("HS512", hashlib.sha512, secret, claims_for(uid))),
        "alg RS256 without keys": bearer(
            unsigned({"alg": "RS256", "typ": "JWT"}, claims_for(uid), b"x" * 256)
        ),
        "wrong audience": bearer(hs256(secret, claims_for(uid, aud="anon"))),
        "no audience": bearer(hs256(secret, claims_for(uid, aud=None))),
        "missing exp": bearer(hs256(secret, claims_for(uid, exp=None))),
        "missing sub": bearer(hs256(secret, claims_for(uid, sub=None))),
        "sub not a uuid": bearer(hs256(secret, claims_for("alice"))),
        "sub empty": bearer(hs256(secret, claims_for(uid, sub=""))),
        "not yet valid": bearer(hs256(secret, claims_for(uid, nbf=now + 3600))),
    }


async def test_bad_tokens_are_refused(client, settings, conn) -> None:
    secret = settings.jwt_secret.get_secret_value()
    for name, headers in bad_tokens(secret).items():
        for method, path, kwargs in PROTECTED:
            r = await client.request(method, path, headers=headers, **kwargs)
            assert r.status_code == 401, (name, method, path, r.text)
            assert_401(r)


async def test_expired_token_has_its_own_code(client, authority) -> None:
    token = authority.issue(uuid.uuid4(), ttl=-10)
    r = await client.get("/api/chat/sessions", headers=bearer(token))
    assert_401(r)
    assert r.json()["code"] == "token_expired"


async def test_refused_token_creates_nothing(client, settings, conn) -> None:
    uid = uuid.uuid4()
    now = int(time.time())
    token = hs256(
        settings.jwt_secret.get_secret_value(), claims_for(uid, iat=now - 100, exp=now - 50)
    )
    r = await client.post("/api/chat/sessions", json={"id": "x"}, headers=bearer(token))
    assert_401(r)
    assert not await profile_exists(conn, uid)


# --- accepted -----------------------------------------------------------------------------


async def test_valid_token_works_and_creates_the_profile(client, authority, conn) -> None:
    uid = uuid.uuid4()
    assert not await profile_exists(conn, uid)
    token = authority.issue(uid)
    r = await client.get("/api/chat/sessions", headers=bearer(token))
    assert r.status_code == 200, r.text
    assert await profile_exists(conn, uid)
    r = await client.post("/api/chat/sessions", json={"id": "mine"}, headers=bearer(token))
    assert r.status_code == 201
    assert r.json()["session"]["user_id"] == str(uid)


async def test_lowercase_scheme_and_audience_list_are_accepted(client, settings) -> None:
    uid = uuid.uuid4()
    secret = settings.jwt_secret.get_secret_value()
    token = hs256(secret, claims_for(uid, aud=["other", "authenticated"]))
    r = await client.get("/api/chat/sessions", headers={"Authorization": f"bearer {token}"})
    assert r.status_code == 200, r.text


async def test_dev_token_signs_in(client, conn) -> None:
    name = f"dev-user-{uuid.uuid4().hex[:8]}"
    r = await client.post("/api/dev/token", json={"name": name})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["user_id"] == str(user_id_for_name(name))
    assert body["expires_in"] > 0
    r = await client.post(
        "/api/chat/sessions", json={"id": "d"}, headers=bearer(body["access_token"])
    )
    assert r.status_code == 201, r.text
    assert r.json()["session"]["user_id"] == body["user_id"]
    assert await profile_exists(conn, uuid.UUID(body["user_id"]))
    # The same name is the same user.
    again = (await client.post("/api/dev/token", json={"name": name.upper()})).json()
    assert again["user_id"] == body["user_id"]


async def test_auth_config_reflects_dev_sign_in(client) -> None:
    r = await client.get("/api/auth/config")
    assert r.status_code == 200
    assert r.json() == {"dev_sign_in": True}


# --- configurations -----------------------------------------------------------------------


async def test_dev_sign_in_off_when_a_secret_is_configured(database_url, tmp_path) -> None:
    secret = "configured-" + uuid.uuid4().hex
    settings = Settings(
        jwt_secret=secret,  # type: ignore[arg-type]
        dev_sign_in=None,
        data_dir=tmp_path,
        database_url=database_url,
        migrate_on_start=False,
    )
    async with running(settings, database_url) as c:
        r = await c.get("/api/auth/config")
        assert r.json() == {"dev_sign_in": False}
        r = await c.post("/api/dev/token", json={"name": "mallory"})
        assert r.status_code == 404
        assert r.json()["code"] == "not_found"
        assert set(r.json()) == {"error", "code"}
        # The configured secret is what counts.
        uid = uuid.uuid4()
        r = await c.get("/api/chat/sessions", headers=bearer(hs256(secret, claims_for(uid))))
        assert r.status_code == 200, r.text
    assert not (tmp_path / "jwt_secret").exists()


async def test_generated_secret_when_nothing_is_configured(database_url, tmp_path) -> None:
    data_dir = tmp_path / "data"
    settings = Settings(
        jwt_secret=None,
        jwt_jwks_file=None,
        jwt_jwks_url=None,
        dev_sign_in=None,
        data_dir=data_dir,
        database_url=database_url,
        migrate_on_start=False,
    )
    async with running(settings, database_url) as c:
        path = data_dir / "jwt_secret"
        assert path.is_file()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        secret = path.read_text().strip()
        assert len(secret) >= 32
        assert (await c.get("/api/auth/config")).json() == {"dev_sign_in": True}
        r = await c.post("/api/dev/token", json={"name": "devuser"})
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        assert jwt.decode(token, secret, algorithms=["HS256"], audience="authenticated")
        r = await c.get("/api/chat/sessions", headers=bearer(token))
        assert r.status_code == 200
    # A restart keeps the secret: tokens stay valid.
    async with running(settings, database_url) as c:
        assert (data_dir / "jwt_secret").read_text().strip() == secret
        r = await c.get("/api/chat/sessions", headers=bearer(token))
        assert r.status_code == 200


# --- JWKS ---------------------------------------------------------------------------------


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk_of(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": kid, "alg": "RS256", "use": "sig"})
    return jwk


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    return rsa_key(), rsa_key()


@pytest.fixture
async def jwks_client(
    database_url: str, tmp_path: Path, rsa_keys: Any
) -> AsyncIterator[httpx.AsyncClient]:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk_of(rsa_keys[0], "k1")]}))
    settings = Settings(
        jwt_jwks_file=path,
        jwt_secret=None,
        dev_sign_in=None,
        data_dir=tmp_path / "data",
        database_url=database_url,
        migrate_on_start=False,
    )
    async with running(settings, database_url) as c:
        yield c


async def test_jwks_token_works(jwks_client, rsa_keys, conn) -> None:
    uid = uuid.uuid4()
    token = jwt.encode(claims_for(uid), rsa_keys[0], algorithm="RS256", headers={"kid": "k1"})
    r = await jwks_client.post("/api/chat/sessions", json={"id": "rsa"}, headers=bearer(token))
    assert r.status_code == 201, r.text
    assert r.json()["session"]["user_id"] == str(uid)
    assert await profile_exists(conn, uid)


async def test_jwks_refuses_other_tokens(jwks_client, rsa_keys, settings) -> None:
    uid = uuid.uuid4()
    key, other = rsa_keys
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    body = b64url(json.dumps(claims_for(uid)).encode())
    confused_sig = hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    now = int(time.time())
    refused = {
        "signed by another key, same kid": jwt.encode(
            claims_for(uid), other, algorithm="RS256", headers={"kid": "k1"}
        ),
        "unknown kid": jwt.encode(claims_for(uid), other, algorithm="RS256", headers={"kid": "k2"}),
        "expired": jwt.encode(
            claims_for(uid, iat=now - 100, exp=now - 10),
            key,
            algorithm="RS256",
            headers={"kid": "k1"},
        ),
        "wrong audience": jwt.encode(
            claims_for(uid, aud="anon"), key, algorithm="RS256", headers={"kid": "k1"}
        ),
        "missing exp": jwt.encode(
            claims_for(uid, exp=None), key, algorithm="RS256", headers={"kid": "k1"}
        ),
        "HS256 with the test secret": hs256(
            settings.jwt_secret.get_secret_value(), claims_for(uid), kid="k1"
        ),
        "HS256 keyed with the public key": f"{head}.{body}.{b64url(confused_sig)}",
        "alg none": unsigned({"alg": "none", "kid": "k1"}, claims_for(uid)),
    }
    for name, token in refused.items():
        r = await jwks_client.get("/api/chat/sessions", headers=bearer(token))
        assert r.status_code == 401, (name, r.text)
        assert_401(r)


async def test_jwks_only_server_offers_no_dev_sign_in(jwks_client) -> None:
    assert (await jwks_client.get("/api/auth/config")).json() == {"dev_sign_in": False}
    r = await jwks_client.post("/api/dev/token", json={"name": "x"})
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"


async def test_hand_made_hs256_token_is_accepted(client, settings) -> None:
    """Checks the helper behind the HS512 case: the refusal there is for the algorithm alone."""
    token = hmac_token(
        "HS256", hashlib.sha256, settings.jwt_secret.get_secret_value(), claims_for(uuid.uuid4())
    )
    r = await client.get("/api/chat/sessions", headers=bearer(token))
    assert r.status_code == 200, r.text


async def test_a_urn_form_subject_is_the_same_user(client, make_user) -> None:
    """`urn:uuid:...` names a UUID too; it must reach the database in the form it can cast."""
    alice = await make_user()
    assert (await alice.client.post("/api/chat/sessions", json={"id": "a"})).status_code == 201
    token = hs256(TEST_JWT_SECRET, claims_for(f"urn:uuid:{alice.id}"))
    r = await client.get("/api/chat/sessions", headers=bearer(token))
    assert r.status_code == 200, r.text
    assert [s["id"] for s in r.json()["sessions"]] == ["a"]
