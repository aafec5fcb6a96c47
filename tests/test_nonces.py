"""The nonces values are sealed with: never handed out twice, in a process or across a fork."""

from __future__ import annotations

import os

from ruta import crypto


def test_nonces_are_distinct_across_refills() -> None:
    nonces = crypto._Nonces()
    taken = [nonces.take() for _ in range(3 * nonces.BLOCK + 7)]
    assert all(len(n) == 12 for n in taken)
    assert len(set(taken)) == len(taken)


def test_a_forked_child_never_hands_out_its_parents_nonces() -> None:
    nonces = crypto._Nonces()
    nonces.take()  # the pool now holds the rest of a block, copied into a child by fork
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next nonce, to the parent
        try:
            os.write(write, nonces.take())
        finally:
            os._exit(0)
    os.close(write)
    from_child = os.read(read, 64)
    os.close(read)
    os.waitpid(pid, 0)
    parents = [nonces.take() for _ in range(nonces.BLOCK)]
    assert len(from_child) == 12
    assert from_child not in parents


def test_sealed_values_open_and_differ_for_the_same_text() -> None:
    vault = crypto.Vault(crypto.generate_key())
    first, second = vault.encrypt("hola"), vault.encrypt("hola")
    assert first != second
    assert vault.decrypt(first) == vault.decrypt(second) == "hola"
