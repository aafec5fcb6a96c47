"""Login throttling, in Redis, keyed on the client's address (the real one behind our proxy:
``RUTA_TRUST_PROXY`` makes ProxyFix read one trusted hop of X-Forwarded-For).

Two limits, so that guessing is slow and nobody can lock the real person out from elsewhere:

- per address: ``ATTEMPTS_PER_WINDOW`` login attempts in ``WINDOW_SECONDS``, whatever the account;
- per (account, address): ``MAX_FAILED_LOGINS`` wrong passwords lock that account *from that
  address* for ``LOCKOUT``; the same account from another address is not affected.

A whole-account lock would let anyone lock an admin out indefinitely with five wrong guesses
every quarter of an hour. Guessing from many addresses stays bounded by five tries per address
per quarter hour against an argon2 hash. Without Redis the whole-account lock in the database
(``admin.accounts.authenticate``) takes over.
"""

from __future__ import annotations

import hashlib
from typing import Any

from redis.exceptions import RedisError

from admin.accounts import LOCKOUT, MAX_FAILED_LOGINS

ATTEMPTS_PER_WINDOW, WINDOW_SECONDS = 30, 600


class LoginThrottle:
    """The limits for one login request from ``address``."""

    def __init__(self, redis: Any, prefix: str, address: str | None) -> None:
        self.redis, self.prefix, self.address = redis, prefix, address or "-"
        self.available = True

    def _account_key(self, email: str) -> str:
        # A hash: no email address in Redis keys.
        account = hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()[:32]
        return f"{self.prefix}:login-fail:{account}:{self.address}"

    def address_exceeded(self) -> bool:
        """Count this attempt against the address; True once it is over the limit."""
        key = f"{self.prefix}:login:{self.address}"
        try:
            attempts = self.redis.incr(key)
            if attempts == 1:
                self.redis.expire(key, WINDOW_SECONDS)
            return int(attempts) > ATTEMPTS_PER_WINDOW
        except RedisError:
            self.available = False
            return False

    def account_locked(self, email: str) -> bool:
        try:
            failures = self.redis.get(self._account_key(email))
        except RedisError:
            self.available = False
            return False
        return failures is not None and int(failures) >= MAX_FAILED_LOGINS

    def failed(self, email: str) -> None:
        key = self._account_key(email)
        try:
            self.redis.incr(key)
            self.redis.expire(key, int(LOCKOUT.total_seconds()))  # from the latest failure
        except RedisError:
            self.available = False

    def succeeded(self, email: str) -> None:
        try:
            self.redis.delete(self._account_key(email))
        except RedisError:
            self.available = False
