"""Data at rest: authenticated encryption for numbers and free text, a keyed hash for lookups.

``RUTA_DATA_KEY`` holds one or more keys (``ruta keys generate``), comma-separated, the first one
current. New data is encrypted with the first key; every listed key can decrypt, so a key is
rotated by putting a new one in front and re-encrypting (``ruta keys rotate``) before the old one
is dropped.

A value is sealed with AES-256-GCM-SIV (``cryptography``'s AEAD) under a key derived from a
configured one by HKDF, as ``r1.`` and the URL-safe base64 of the key's 4-byte id, a random
12-byte nonce and the ciphertext with its tag; the prefix and the key id are authenticated with
it. GCM-SIV rather than GCM: a repeated random nonce would reveal only that two values are equal,
never the key stream. Before December 2026 values were Fernet tokens (``gAAAAA...``, AES-128-CBC
with HMAC-SHA256): they are still read with the same keys, and ``ruta keys rotate`` rewrites them.
The change was for speed: on the webhooks' path, between everything else a message runs, a
Fernet token (a cipher and an HMAC set up anew each time, in caches gone cold) cost 50-60 us to
write and 70-90 to read, a sealed value 24 and 37; a message writes three and reads one
(docs/benchmarks.md).

Lookups (find a contact by number) cannot use randomised encryption, so they use HMAC-SHA256.
``RUTA_LOOKUP_KEYS`` holds the lookup keys, the first one current: new hashes use it, lookups try
every key. Without it the only key is derived from the *last* data key, as before lookup keys
could be rotated; that key is also tried last when ``RUTA_LOOKUP_KEYS`` is set, so a deployment
opting in keeps finding every person until ``ruta keys rotate`` has rewritten their hashes, and
stops trying it once the old data key leaves ``RUTA_DATA_KEY``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections import deque
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

#: The text every sealed value starts with; the version of the format.
PREFIX = "r1."
_AAD_PREFIX = PREFIX.encode("ascii")
_KEY_ID = 4
_NONCE = 12


class _Nonces:
    """Random nonces for one process, drawn from the OS a few hundred at a time: a message
    seals three values, and ``os.urandom`` is a system call (which also lets go of the GIL)
    each time. Each nonce is handed out once (a deque's ``popleft`` is atomic); a forked
    child empties its copy, so it never hands out one of its parent's."""

    BLOCK = 256

    def __init__(self) -> None:
        self._pool: deque[bytes] = deque()
        os.register_at_fork(after_in_child=self._pool.clear)

    def take(self) -> bytes:
        try:
            return self._pool.popleft()
        except IndexError:
            block = os.urandom(_NONCE * self.BLOCK)
            self._pool.extend(block[i : i + _NONCE] for i in range(0, len(block), _NONCE))
            return self._pool.popleft()


_nonces = _Nonces()


def keyed_hmac(key: bytes, digest: Callable[..., Any]) -> Callable[[bytes], bytes]:
    """HMAC under ``key`` with ``digest`` (``hashlib.sha256``...), as a function of the value.

    The standard library's HMAC, keyed once and copied for each value: its inner and outer
    hash states are worked out with the key, and a value costs two hash copies and updates.
    ``hmac.digest`` sets up OpenSSL's HMAC afresh on every call, which between a webhook's
    other work (its caches cold) took 6.7-9.2 us against 2.6-4.5 (an HMAC-SHA256 of a phone
    number, measured here).
    """

    def construct(data: bytes = b"") -> Any:
        return digest(data)

    # A constructor of its own, not the name or OpenSSL's: the standard library's own HMAC.
    template = hmac.new(key, digestmod=construct)

    def mac(value: bytes) -> bytes:
        copy = template.copy()
        copy.update(value)
        return copy.digest()

    return mac


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


def _derive(key: str, info: bytes, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(
        base64.urlsafe_b64decode(key)
    )


def _hash_key(key: str) -> bytes:
    # The same derivation for a lookup key as for the last data key: a deployment may opt in
    # with its last data key as lookup key and keep every hash it has.
    return _derive(key, b"ruta lookup hash v1")


def _sealer(key: str) -> tuple[bytes, AESGCMSIV]:
    """The key id and the AEAD of one data key."""
    try:
        aead = AESGCMSIV(_derive(key, b"ruta data seal v1"))
    except UnsupportedAlgorithm as exc:  # cryptography built against OpenSSL before 3.2
        raise DataKeyError("this cryptography build lacks AES-GCM-SIV (OpenSSL 3.2+)") from exc
    return _derive(key, b"ruta data key id v1", _KEY_ID), aead


def _opened(token: str) -> tuple[bytes, bytes, bytes]:
    """A sealed value's key id, nonce and ciphertext with its tag; ValueError if it is not one."""
    raw = base64.urlsafe_b64decode(token[len(PREFIX) :])
    if len(raw) < _KEY_ID + _NONCE:
        raise ValueError("too short")
    return raw[:_KEY_ID], raw[_KEY_ID : _KEY_ID + _NONCE], raw[_KEY_ID + _NONCE :]


class Vault:
    """Encrypts, decrypts and hashes personal data with the configured keys."""

    def __init__(self, keys: str, lookup_keys: str | None = None) -> None:
        parts = _split(keys, "RUTA_DATA_KEY")
        if not parts:
            raise DataKeyError("RUTA_DATA_KEY is empty: run `ruta keys generate`")
        sealers = [_sealer(k) for k in parts]
        self._current_id, self._current = sealers[0]
        self._sealers = dict(sealers)
        if len(self._sealers) < len(set(parts)):
            raise DataKeyError("two keys of RUTA_DATA_KEY share an id: generate another key")
        # Values written before the AEAD format (see the module's docstring).
        self._fernet = MultiFernet([Fernet(k.encode("ascii")) for k in parts])
        lookup = _split(lookup_keys, "RUTA_LOOKUP_KEYS")
        #: False while lookup hashes come from the last data key alone (no RUTA_LOOKUP_KEYS).
        self.own_lookup_keys = bool(lookup)
        hash_keys: list[bytes] = []
        for key in [*lookup, parts[-1]]:
            derived = _hash_key(key)
            if derived not in hash_keys:
                hash_keys.append(derived)
        self._hash_keys = hash_keys
        self._macs = [keyed_hmac(key, hashlib.sha256) for key in hash_keys]

    def encrypt(self, plain: str) -> str:
        header = _AAD_PREFIX + self._current_id
        nonce = _nonces.take()
        sealed = self._current.encrypt(nonce, plain.encode("utf-8"), header)
        return PREFIX + base64.urlsafe_b64encode(self._current_id + nonce + sealed).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            if not token.startswith(PREFIX):
                return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
            key_id, nonce, sealed = _opened(token)
            aead = self._sealers.get(key_id)
            if aead is None:
                raise InvalidToken
            return aead.decrypt(nonce, sealed, _AAD_PREFIX + key_id).decode("utf-8")
        except (InvalidToken, InvalidTag, ValueError) as exc:  # binascii.Error is a ValueError
            raise DataKeyError("cannot decrypt: no configured key matches") from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt a value under the current (first) key."""
        return self.encrypt(self.decrypt(token))

    def is_current(self, token: str) -> bool:
        """Whether ``token`` is sealed under the current key already (nothing to rotate)."""
        try:
            if not token.startswith(PREFIX) or _opened(token)[0] != self._current_id:
                return False
            self.decrypt(token)
        except (ValueError, DataKeyError):
            return False
        return True

    def lookup_hash(self, value: str) -> str:
        """The hash new rows are stored under: the current lookup key's."""
        return self._macs[0](value.encode("utf-8")).hex()

    def lookup_hashes(self, value: str) -> list[str]:
        """Every hash ``value`` may be stored under, the current one first: a row keeps the
        hash it was written with until ``ruta keys rotate`` rewrites it."""
        encoded = value.encode("utf-8")
        return [mac(encoded).hex() for mac in self._macs]


_vault: Vault | None = None


def install(vault: Vault) -> None:
    """Make ``vault`` the one the encrypted column type uses (called by the app factory)."""
    global _vault
    _vault = vault


def current() -> Vault:
    if _vault is None:
        raise DataKeyError("no data key installed: the app factory was not run")
    return _vault
