"""``keyed_hmac`` (ruta/crypto.py) is HMAC: the lookup hashes and Twilio's signatures it makes
are the ones ``hmac.digest`` made before, whatever the key's and the value's length."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from ruta.crypto import keyed_hmac

# Keys past a block (64 bytes for both) are hashed first: both sides of that line.
KEYS = st.binary(min_size=0, max_size=200)


@given(key=KEYS, values=st.lists(st.binary(max_size=300), min_size=1, max_size=4))
def test_it_is_the_standard_hmac_for_every_value_under_one_key(
    key: bytes, values: list[bytes]
) -> None:
    sha256, sha1 = keyed_hmac(key, hashlib.sha256), keyed_hmac(key, hashlib.sha1)
    for value in values:
        assert sha256(value) == hmac.digest(key, value, "sha256")
        assert sha1(value) == hmac.digest(key, value, "sha1")
