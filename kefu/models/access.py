"""Secrets Kefu keeps only as hashes: staff passwords (argon2id) and the gateways' API tokens (SHA-256).

A token is 32 random bytes shown once when it is made; only its SHA-256 is stored (a random token needs no slow
hash: there is nothing to guess), so checking one is a single indexed lookup and a revoked token is refused on
the very next request. A password is a person's choice: argon2id (``argon2-cffi``), salted and slow on purpose.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from kefu.models.base import Base, utcnow

TOKEN_PREFIX = "kefu_"  # noqa: S105 - the marker every Kefu token starts with, not a secret
_HASHER = PasswordHasher()


class ApiToken(Base):
    """A named gateway token (``kefu token add``): its hash, the first characters to recognise it, when revoked."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    shown_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    revoked_at: Mapped[dt.datetime | None]

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class TokenNameTaken(ValueError):
    pass


def add_token(session: Session, name: str, *, created_by: int | None = None) -> tuple[ApiToken, str]:
    """A new token named ``name``: the row and the token itself (shown once; only its hash is stored)."""
    name = name.strip()
    if not name or len(name) > 64:
        raise ValueError("a token's name is 1–64 characters")
    if session.scalars(select(ApiToken).where(ApiToken.name == name)).first() is not None:
        raise TokenNameTaken(f"a token named '{name}' exists already (names stay taken after a revoke)")
    token = new_token()
    row = ApiToken(
        name=name,
        token_hash=hash_token(token),
        shown_prefix=token[: len(TOKEN_PREFIX) + 6],
        created_by_staff_id=created_by,
    )
    session.add(row)
    session.flush()
    return row, token


def token_is_valid(session: Session, token: str) -> bool:
    """True for a token made by ``add_token`` and not revoked (one indexed lookup, nothing cached)."""
    if not token.startswith(TOKEN_PREFIX):
        return False
    found = session.scalars(
        select(ApiToken.id).where(ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None))
    ).first()
    return found is not None


def new_password() -> str:
    """A one-time password: 16 characters from an alphabet without look-alikes (0/O, 1/l/I)."""
    alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(16))


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


TRIAL_TOKEN_NAME = "try-the-api"  # noqa: S105 - a token's name, not the token


def first_token(session: Session) -> str | None:
    """On a database without any API token: make one for trying the gateway API; the token, else ``None``."""
    if session.scalars(select(ApiToken.id).limit(1)).first() is not None:
        return None
    _, token = add_token(session, TRIAL_TOKEN_NAME)
    return token
