"""Staff sign-in: server-side sessions and the lock-out after repeated wrong passwords.

A session is 32 random bytes in the browser's cookie; only its SHA-256 is stored (like an API token: nothing to
guess, one indexed lookup per request). It ends when signed out, after ``Rules.session`` from its start, after
``Rules.idle`` without a request, and at once when its person is deactivated. Wrong passwords are counted per
sign-in name (also for names nobody has, so a lock-out tells nothing about who exists); ``Rules.failures`` in a
row lock the name for ``Rules.lock``, during which even the right password is refused. Repository functions: they
take the session and never commit.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from functools import cache

from sqlalchemy import ForeignKey, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from kefu.models.access import hash_password, hash_token, new_password, verify_password
from kefu.models.base import Base
from kefu.models.people import Staff

PASSWORD_MIN_LENGTH = 10
LAST_SEEN_EVERY = dt.timedelta(seconds=60)  # a session's last use is written at most this often


@cache
def _dummy_hash() -> str:
    """Checked when the sign-in name is unknown, so that answering takes as long as for a known one (made on first
    use: a hash costs tens of milliseconds, not to be paid by every process importing the models)."""
    return hash_password("kefu-no-such-person")


class StaffSession(Base):
    """One sign-in of one person: the hash of the cookie's token, when it started, was last used, ends."""

    __tablename__ = "staff_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    created_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    ended_at: Mapped[dt.datetime | None]


class SignInFailures(Base):
    """Wrong passwords in a row for one sign-in name, and until when it is locked."""

    __tablename__ = "sign_in_failures"

    login: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int]
    last_failure_at: Mapped[dt.datetime]
    locked_until: Mapped[dt.datetime | None]


@dataclass(frozen=True)
class Rules:
    session: dt.timedelta
    idle: dt.timedelta
    failures: int
    lock: dt.timedelta


class SignInRefused(Exception):
    """Why a sign-in was refused: ``wrong`` (name or password), ``locked`` (until ``until``; ``just_locked`` when this
    attempt locked it) or ``inactive``."""

    def __init__(self, reason: str, until: dt.datetime | None = None, *, just_locked: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.until, self.just_locked = reason, until, just_locked


class PasswordRefused(ValueError):
    """A new password Kefu does not accept (zh-CN message); nothing was changed."""


def sign_in(session: Session, login: str, password: str, now: dt.datetime, rules: Rules) -> Staff:
    """The person signing in with ``login`` and ``password``, or ``SignInRefused``; counts wrong passwords."""
    login = login.strip().lower()[:64]
    record = session.get(SignInFailures, login)
    if record is not None and record.locked_until is not None and record.locked_until > now:
        raise SignInRefused("locked", record.locked_until)
    person = session.scalars(select(Staff).where(Staff.login == login)).first() if login else None
    hashed = person.password_hash if person is not None and person.password_hash else _dummy_hash()
    if not verify_password(hashed, password) or person is None or not person.password_hash:
        if record is None or (record.locked_until is not None and record.locked_until <= now):
            record = record or SignInFailures(login=login, failures=0, last_failure_at=now)
            session.add(record)
            record.failures, record.locked_until = 0, None
        record.failures += 1
        record.last_failure_at = now
        if record.failures >= rules.failures:
            record.locked_until = now + rules.lock
            session.flush()
            raise SignInRefused("locked", record.locked_until, just_locked=True)
        session.flush()
        raise SignInRefused("wrong")
    if not person.active:
        raise SignInRefused("inactive")
    if record is not None:
        session.delete(record)
        session.flush()
    return person


def start_session(session: Session, person: Staff, now: dt.datetime, rules: Rules) -> str:
    """A new session for ``person``: the token for the cookie (only its hash is stored)."""
    token = secrets.token_urlsafe(32)
    session.add(
        StaffSession(
            token_hash=hash_token(token),
            staff_id=person.id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + rules.session,
        )
    )
    session.flush()
    return token


def session_person(session: Session, token: str, now: dt.datetime, rules: Rules) -> Staff | None:
    """The active person whose session ``token`` is, if the session still holds (not ended, expired or idle)."""
    if not token:
        return None
    row = session.scalars(select(StaffSession).where(StaffSession.token_hash == hash_token(token))).first()
    if row is None or row.ended_at is not None:
        return None
    if now >= row.expires_at or now - row.last_seen_at >= rules.idle:
        row.ended_at = now
        session.flush()
        return None
    person = session.get(Staff, row.staff_id)
    if person is None or not person.active:
        row.ended_at = now
        session.flush()
        return None
    if now - row.last_seen_at >= LAST_SEEN_EVERY:
        row.last_seen_at = now
        session.flush()
    return person


def end_session(session: Session, token: str, now: dt.datetime) -> None:
    row = session.scalars(select(StaffSession).where(StaffSession.token_hash == hash_token(token))).first()
    if row is not None and row.ended_at is None:
        row.ended_at = now
        session.flush()


def change_password(session: Session, person: Staff, current: str, new: str, repeated: str) -> None:
    """Set ``person``'s password to ``new`` (checked: the current one right, long enough, typed twice, different);
    a one-time password is then gone."""
    if not person.password_hash or not verify_password(person.password_hash, current):
        raise PasswordRefused("当前密码不正确。")
    if new != repeated:
        raise PasswordRefused("两次输入的新密码不一致。")
    if len(new) < PASSWORD_MIN_LENGTH:
        raise PasswordRefused(f"新密码至少需要 {PASSWORD_MIN_LENGTH} 个字符。")
    if new == current:
        raise PasswordRefused("新密码不能与当前密码相同。")
    person.password_hash = hash_password(new)
    person.password_one_time = False
    session.flush()


def reset_password(session: Session, person: Staff, now: dt.datetime) -> str:
    """A new one-time password for ``person`` (to be changed at the next sign-in): the password, shown once. Their
    open sessions end and a lock-out of their sign-in name is lifted."""
    password = new_password()
    person.password_hash = hash_password(password)
    person.password_one_time = True
    for row in session.scalars(
        select(StaffSession).where(StaffSession.staff_id == person.id, StaffSession.ended_at.is_(None))
    ):
        row.ended_at = now
    if person.login:
        session.execute(delete(SignInFailures).where(SignInFailures.login == person.login))
    session.flush()
    return password


def forget_ended(session: Session, now: dt.datetime) -> None:
    """Drop sessions that ended or expired more than a day ago."""
    cutoff = now - dt.timedelta(days=1)
    session.execute(delete(StaffSession).where(StaffSession.expires_at < cutoff))
