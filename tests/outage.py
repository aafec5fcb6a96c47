"""Database outages for tests: a TCP proxy in front of PostgreSQL that can stop forwarding (a
hung network: connections accepted, bytes never answered), and a held write lock for SQLite."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url


class HangingProxy:
    """Forwards 127.0.0.1:<port> to an upstream address until ``hang()``; ``resume()`` drops every
    connection (as a restarted proxy would) and forwards new ones again."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.forwarding = threading.Event()
        self.forwarding.set()
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.sockets.append(client)
            if not self.forwarding.is_set():
                continue  # accepted, never answered
            upstream = socket.create_connection(self.upstream)
            with self.lock:
                self.sockets.append(upstream)
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                self.forwarding.wait()  # hung: hold the bytes, answer nothing
                target.sendall(data)

    def hang(self) -> None:
        self.forwarding.clear()

    def resume(self) -> None:
        with self.lock:
            dropped, self.sockets = self.sockets, []
        for sock in dropped:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.forwarding.set()

    def close(self) -> None:
        self.resume()
        self.listener.close()


@contextmanager
def proxied(database_url: str) -> Iterator[tuple[str, HangingProxy]]:
    """``database_url`` rewritten to go through a ``HangingProxy``."""
    url = make_url(database_url)
    proxy = HangingProxy((url.host or "127.0.0.1", url.port or 5432))
    try:
        yield url.set(host="127.0.0.1", port=proxy.port).render_as_string(False), proxy
    finally:
        proxy.close()


@contextmanager
def write_locked(database_url: str) -> Iterator[None]:
    """SQLite: another connection holds the write lock for the block."""
    path = make_url(database_url).database
    assert path
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()
