"""Data at rest: Fernet encryption for numbers and free text, a keyed hash for lookups.

``RUTA_DATA_KEY`` holds one or more Fernet keys, comma-separated, the first one current. New data is
encrypted with the first key; every listed key can decrypt, so a key is rotated by putting a new one
in front and re-encrypting (``ruta keys rotate``) before the old one is dropped.

Lookups (find a contact by number) cannot use Fernet, which is randomised, so they use
HMAC-SHA256. ``RUTA_LOOKUP_KEYS`` holds the lookup keys, the first one current: new hashes use it,
lookups try every key. Without it the only key is derived from the *last* data key, as before
lookup keys could be rotated; that key is also tried last when ``RUTA_LOOKUP_KEYS`` is set, so a
deployment opting in keeps finding every person until ``ruta keys rotate`` has rewritten their
hashes, and stops trying it once the old data key leaves ``RUTA_DATA_KEY``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class DataKeyError(ValueError):
    """RUTA_DATA_KEY is missing, a configured key is not a Fernet key, or no key decrypts."""


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


def _split(keys: str | None, name: str) -> list[str]:
    parts = [k.strip() for k in (keys or "").split(",") if k.strip()]
    try:
        for key in parts:
            Fernet(key.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise DataKeyError(f"{name} holds a value that is not a Fernet key") from exc
    return parts


def _hash_key(key: str) -> bytes:
    # The same derivation for a lookup key as for the last data key: a deployment may opt in
    # with its last data key as lookup key and keep every hash it has.
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"ruta lookup hash v1"
    ).derive(base64.urlsafe_b64decode(key))


class Vault:
    """Encrypts, decrypts and hashes personal data with the configured keys."""

    def __init__(self, keys: str, lookup_keys: str | None = None) -> None:
        parts = _split(keys, "RUTA_DATA_KEY")
        if not parts:
            raise DataKeyError("RUTA_DATA_KEY is empty: run `ruta keys generate`")
        fernets = [Fernet(k.encode("ascii")) for k in parts]
        self._current = fernets[0]
        self._fernet = MultiFernet(fernets)
        lookup = _split(lookup_keys, "RUTA_LOOKUP_KEYS")
        #: False while lookup hashes come from the last data key alone (no RUTA_LOOKUP_KEYS).
        self.own_lookup_keys = bool(lookup)
        hash_keys: list[bytes] = []
        for key in [*lookup, parts[-1]]:
            derived = _hash_key(key)
            if derived not in hash_keys:
                hash_keys.append(derived)
        self._hash_keys = hash_keys

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise DataKeyError("cannot decrypt: no configured key matches") from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt a token under the current (first) key."""
        return self._fernet.rotate(token.encode("ascii")).decode("ascii")

    def is_current(self, token: str) -> bool:
        """Whether ``token`` is already encrypted under the current key (nothing to rotate)."""
        try:
            self._current.decrypt(token.encode("ascii"))
        except InvalidToken:
            return False
        return True

    def lookup_hash(self, value: str) -> str:
        """The hash new rows are stored under: the current lookup key's."""
        return self._hash(self._hash_keys[0], value)

    def lookup_hashes(self, value: str) -> list[str]:
        """Every hash ``value`` may be stored under, the current one first: a row keeps the
        hash it was written with until ``ruta keys rotate`` rewrites it."""
        return [self._hash(key, value) for key in self._hash_keys]

    @staticmethod
    def _hash(key: bytes, value: str) -> str:
        return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


_vault: Vault | None = None


def install(vault: Vault) -> None:
    """Make ``vault`` the one the encrypted column type uses (called by the app factory)."""
    global _vault
    _vault = vault


def current() -> Vault:
    if _vault is None:
        raise DataKeyError("no data key installed: the app factory was not run")
    return _vault
