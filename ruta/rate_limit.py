"""A send rate per sender, held in Redis across every worker.

Each caller reserves the next free slots on one shared timeline (a GCRA, the "virtual
scheduling" form of a token bucket): the Redis key holds the time the last reservation ends;
reserving ``n`` sends at ``rate`` a second moves it ``n / rate`` seconds on, atomically in a
Lua script that reads Redis's own clock (so workers on other machines agree). The caller then
sleeps until its slot starts. Sends therefore come out evenly spaced, ``rate`` a second in any
one-second window (plus one at its boundary), whatever the number of workers.
"""

from __future__ import annotations

import time

from redis import Redis

__all__ = ["RateLimitTimeout", "acquire"]

#: A reservation is only made when it starts within this many seconds; otherwise the caller
#: sleeps and asks again, so a crowd of workers never books the timeline far ahead.
MAX_RESERVE_AHEAD = 5.0

_RESERVE = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - now
if wait > tonumber(ARGV[3]) then
  return {0, tostring(wait)}
end
local new_tat = tat + tonumber(ARGV[1]) / tonumber(ARGV[2])
local ttl = math.ceil((new_tat - now) * 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.6f', new_tat), 'PX', ttl)
return {1, tostring(wait)}
"""


class RateLimitTimeout(Exception):
    """No slot could be reserved within the caller's time limit."""


def acquire(redis: Redis, key: str, rate: float, n: int = 1, *, timeout: float = 30.0) -> float:
    """Block until ``n`` sends are allowed under ``rate`` a second for ``key``; return the
    seconds waited. ``rate <= 0`` means no limit. Raises RateLimitTimeout after ``timeout``
    seconds without a reservation (the caller gives its work back and tries later)."""
    if rate <= 0 or n <= 0:
        return 0.0
    started = time.monotonic()
    script = redis.register_script(_RESERVE)
    while True:
        reserved, wait_text = script(keys=[key], args=[n, rate, MAX_RESERVE_AHEAD])
        wait = float(wait_text)
        if int(reserved):
            if wait > 0:
                time.sleep(wait)
            return time.monotonic() - started
        if time.monotonic() - started + wait - MAX_RESERVE_AHEAD > timeout:
            raise RateLimitTimeout(f"no send slot for {key} within {timeout} s")
        time.sleep(min(wait - MAX_RESERVE_AHEAD + 0.01, 1.0))
