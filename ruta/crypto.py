"""Data at rest: Fernet encryption for numbers and free text, a keyed hash for lookups.

``RUTA_DATA_KEY`` holds one or more Fernet keys, comma-separated, the first one current. New data is
encrypted with the first key; every listed key can decrypt, so a key is rotated by putting a new one
in front and re-encrypting (``ruta keys rotate``) before the old one is dropped.

Lookups (find a contact by number) cannot use Fernet, which is randomised, so they use
HMAC-SHA256 under a key derived from the *last* listed key: rotating encryption keys at the front
then leaves every lookup hash valid.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class DataKeyError(ValueError):
    """RUTA_DATA_KEY is missing or not a list of Fernet keys."""


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


class Vault:
    """Encrypts, decrypts and hashes personal data with the configured keys."""

    def __init__(self, keys: str) -> None:
        parts = [k.strip() for k in (keys or "").split(",") if k.strip()]
        if not parts:
            raise DataKeyError("RUTA_DATA_KEY is empty: run `ruta keys generate`")
        try:
            fernets = [Fernet(k.encode("ascii")) for k in parts]
        except (ValueError, UnicodeEncodeError) as exc:
            raise DataKeyError("RUTA_DATA_KEY holds a value that is not a Fernet key") from exc
        self._fernet = MultiFernet(fernets)
        self._hash_key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"ruta lookup hash v1"
        ).derive(base64.urlsafe_b64decode(parts[-1]))

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

    def lookup_hash(self, value: str) -> str:
        return hmac.new(self._hash_key, value.encode("utf-8"), hashlib.sha256).hexdigest()


_vault: Vault | None = None


def install(vault: Vault) -> None:
    """Make ``vault`` the one the encrypted column type uses (called by the app factory)."""
    global _vault
    _vault = vault


def current() -> Vault:
    if _vault is None:
        raise DataKeyError("no data key installed: the app factory was not run")
    return _vault
