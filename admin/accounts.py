"""Accounts: argon2 password hashes, lockout after repeated failures, ``ruta users create``."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ruta.models import Role, User

#: Failures in a row that lock an account, and for how long.
MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 12

_hasher = PasswordHasher()


class AccountError(ValueError):
    pass


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"a password has at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def generate_password() -> str:
    return secrets.token_urlsafe(15)


def create_user(
    session: Session,
    email: str,
    role: str,
    password: str,
    *,
    country: str | None = None,
    focal_point_id: int | None = None,
) -> User:
    email = email.strip().lower()
    if "@" not in email:
        raise AccountError("not an email address")
    chosen = _checked_role(role, country, focal_point_id)
    if session.scalar(select(User.id).where(func.lower(User.email) == email)):
        raise AccountError(f"{email} already has an account")
    user = User(
        email=email,
        password_hash=hash_password(password),
        role=chosen.value,
        country=country.upper() if country else None,
        focal_point_id=focal_point_id,
    )
    session.add(user)
    session.flush()
    return user


def _checked_role(role: str, country: str | None, focal_point_id: int | None) -> Role:
    try:
        chosen = Role(role)
    except ValueError:
        raise AccountError(f"role must be one of {', '.join(r.value for r in Role)}") from None
    if chosen is Role.COORDINATOR and not country:
        raise AccountError("a coordinator needs --country")
    if chosen is Role.FOCAL_POINT and not focal_point_id:
        raise AccountError("a focal point account needs --focal-point ID")
    return chosen


def end_sessions(user: User) -> None:
    """Every session of ``user`` (on any device) is refused from its next request."""
    user.session_version = (user.session_version or 0) + 1


def set_password(session: Session, user: User, password: str) -> None:
    user.password_hash = hash_password(password)
    user.failed_logins, user.locked_until = 0, None
    end_sessions(user)


def set_role(
    session: Session,
    user: User,
    role: str,
    *,
    country: str | None = None,
    focal_point_id: int | None = None,
) -> None:
    """A new role (and its scope); sessions opened under the old one end."""
    chosen = _checked_role(role, country, focal_point_id)
    user.role = chosen.value
    user.country = country.upper() if chosen is Role.COORDINATOR and country else None
    user.focal_point_id = focal_point_id if chosen is Role.FOCAL_POINT else None
    end_sessions(user)


def authenticate(
    session: Session, email: str, password: str, now: datetime, *, lock_account: bool = True
) -> User | None:
    """The user if the password is right and the account is not locked; counts failures.

    ``lock_account=False`` leaves locking to the caller: the web login locks an account per
    address in Redis (``admin.throttle``), and uses this whole-account lock only without Redis.
    """
    user = session.scalar(
        select(User).where(func.lower(User.email) == email.strip().lower()).with_for_update()
    )
    if user is None or not user.active:
        _hasher.hash(password)  # same work either way: no timing hint that the email exists
        return None
    if lock_account and user.locked_until is not None and user.locked_until > now:
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        if not lock_account:
            return None
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = now + LOCKOUT
            user.failed_logins = 0
        return None
    user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def is_locked(user: User, now: datetime) -> bool:
    return user.locked_until is not None and user.locked_until > now
