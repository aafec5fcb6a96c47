"""Inbound SMS benchmark: Ruta's signed Twilio webhook against a bare Flask endpoint.

Not a test. One command sets up a private PostgreSQL database (``ruta_bench`` by default, its
schema dropped and rebuilt each run), migrates it, publishes the flows, loads the demo directory,
starts Ruta and ``bench/bare_app.py`` under identical gunicorn settings on loopback, then drives
both with the same pre-signed requests from N concurrent fake phones. Each phone keeps one HTTP/1.1
keep-alive connection and walks the default flow (HOLA, 1, upala, salud, HOLA, ...), waiting for
each reply before it sends the next message, as a person does.

    .venv/bin/python bench/inbound.py --concurrency 32 --duration 20

Every reply of Ruta must be the flow's (walks that reach a wrong screen are counted and fail the
run); beside throughput and latency it prints the web processes' and PostgreSQL's CPU ms and the
database round trips per message over the measured window (bench/measure.py).

Everything it starts is stopped at the end, also on errors and Ctrl-C. Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import math
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from measure import Backends, Snapshot, Window, hook_environment

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
WEBHOOK_PATH = "/webhooks/twilio/sms"
CONVERSATION = ("HOLA", "1", "upala", "salud")
AT_TOKEN = "bench-at-callback-token"
USSD_PATH = f"/webhooks/africastalking/{AT_TOKEN}/ussd"
#: What each reply of the SMS conversation must contain (a fallback reply is a failure).
SMS_EXPECT = ("Buscar servicios", "municipio", "Salud", "Tel")
#: A USSD walk: dial, find services, Upala (5th on the first page), health. The cumulative
#: ``text`` is what Africa's Talking sends; every walk is a new session of a new number: a walk
#: left on a question (as here, the list waits for "1 Recibir todo por SMS") would otherwise
#: make the person's next dial within five minutes a "your call was cut off, continue?" screen.
USSD_WALK = ("", "1", "1*5", "1*5*1")
#: What each screen of the walk must contain.
USSD_EXPECT = ("Buscar servicios", "Upala", "Salud", "Recibir todo por SMS")
TWILIO_TOKEN = "bench-twilio-auth-token"
ACCOUNT_SID = "AC" + "0" * 32
FROM_NUMBER = "+15005550006"

# Targets of issue 11 on the reference machine (2 cores), at 32 concurrent connections.
TARGET_RATIO = 0.2
TARGET_P99_MS = 100.0
TARGET_USSD_P99_MS = 100.0
TITLES = {
    "sms": "Inbound SMS, signed Twilio webhook",
    "ussd": "USSD menu steps, Africa's Talking callback",
}


# --- set-up ---------------------------------------------------------------------------------


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def libpq_url(url: str) -> str:
    """The same URL without a SQLAlchemy driver suffix, for psycopg.connect."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def prepare_database(admin_url: str, database: str) -> str:
    """Create ``database`` on the server of ``admin_url`` if needed, with an empty schema."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    if not make_url(admin_url).get_backend_name().startswith("postgres"):
        raise SystemExit("--database-url must be a PostgreSQL URL")
    if make_url(admin_url).host not in (None, HOST, "localhost"):
        raise SystemExit("--database-url must point at this machine (127.0.0.1)")
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if exists is None:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
            log(f"created database {database}")
    bench_url = make_url(admin_url).set(database=database).render_as_string(hide_password=False)
    with psycopg.connect(libpq_url(bench_url), autocommit=True) as connection:
        connection.execute("DROP SCHEMA IF EXISTS public CASCADE")
        connection.execute("CREATE SCHEMA public")
    return bench_url


def ruta_environment(
    database_url: str, redis_url: str, port: int, instance: Path
) -> dict[str, str]:
    from ruta.crypto import generate_key

    env = dict(os.environ)
    env.update(
        RUTA_SECRET_KEY=secrets.token_urlsafe(32),
        RUTA_DATA_KEY=generate_key(),
        RUTA_INSTANCE_DIR=str(instance),
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        PUBLIC_BASE_URL=f"http://{HOST}:{port}",
        TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_FROM_NUMBER=FROM_NUMBER,
        AT_CALLBACK_TOKEN=AT_TOKEN,
        RUTA_QUEUE_PREFIX="ruta-bench",
        PYTHONUNBUFFERED="1",
    )
    return env


def run_cli(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [str(VENV_BIN / "ruta"), *args], env=env, cwd=REPO, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"`ruta {' '.join(args)}` failed:\n{done.stdout}{done.stderr}")
    log(f"ruta {' '.join(args)}: {done.stdout.strip().splitlines()[-1:]}")


#: gunicorn worker classes by the name --worker-class takes here.
WORKER_CLASSES = {
    "balanced": "gateway.serving.BalancedThreadWorker",
    "gthread": "gthread",
    "sync": "sync",
}


@dataclass(frozen=True)
class ServerSettings:
    workers: int
    worker_class: str
    threads: int
    backlog: int = 2048
    config: str | None = None

    def args(self) -> list[str]:
        worker_class = WORKER_CLASSES.get(self.worker_class, self.worker_class)
        args = ["--workers", str(self.workers), "--worker-class", worker_class]
        if self.config:
            args += ["--config", self.config]
        if self.worker_class != "sync":
            args += ["--threads", str(self.threads), "--keep-alive", "5"]
        # --timeout 20 as in the Procfile; a short graceful timeout for a quick tear-down.
        return [*args, "--timeout", "20", "--backlog", str(self.backlog), "--graceful-timeout", "5"]


class Server:
    """One gunicorn master in its own session, stopped by its process id only."""

    def __init__(
        self, name: str, target: str, port: int, settings: ServerSettings, env: dict[str, str]
    ) -> None:
        self.name, self.port = name, port
        self.log_path = Path(env["RUTA_INSTANCE_DIR"]) / f"gunicorn-{name}.log"
        command = [
            str(VENV_BIN / "gunicorn"),
            target,
            "--bind",
            f"{HOST}:{port}",
            "--pythonpath",
            str(BENCH_DIR),
            "--chdir",
            str(REPO),
            "--log-level",
            "warning",
            *settings.args(),
        ]
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, path: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name}: gunicorn exited early:\n{self.tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                connection = http.client.HTTPConnection(HOST, self.port, timeout=2)
                try:
                    connection.request("GET", path)
                    if connection.getresponse().status == 200:
                        return
                finally:
                    connection.close()
            time.sleep(0.2)
        raise SystemExit(f"{self.name}: not ready after {timeout:.0f}s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # gunicorn: graceful shutdown
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)  # its own session only
                self.process.wait(timeout=5)
        self._log.close()


# --- requests -------------------------------------------------------------------------------


def phone_number(index: int) -> str:
    return f"+5068800{index:04d}"


def ussd_number(phone: int, walk: int) -> str:
    """A number per walk (``+5068PPPWWWW``): a first call every time, never a resumed one."""
    return f"+5068{phone:03d}{walk % 10_000:04d}"


class RequestBook:
    """The requests of every phone, pre-signed before timing (``presign`` per phone).

    Message ``k`` of phone ``i`` is the same bytes for both targets, with a MessageSid unique in
    the run and a correct X-Twilio-Signature for ``PUBLIC_BASE_URL + /webhooks/twilio/sms``.
    Ruta never runs past the pool at the default size; the bare app does, and repeats it.
    """

    def __init__(
        self,
        public_base_url: str,
        host_header: str,
        phones: int,
        presign: int,
        channel: str = "sms",
    ) -> None:
        from twilio.request_validator import RequestValidator

        self.url = public_base_url.rstrip("/") + WEBHOOK_PATH
        self.host_header = host_header
        self.channel = channel
        self.validator = RequestValidator(TWILIO_TOKEN)
        self.run_tag = secrets.randbits(32)
        self.signed_in_loop = 0
        self.pool = [[self._build(i, k) for k in range(presign)] for i in range(phones)]

    def _build(self, phone: int, seq: int) -> bytes:
        if self.channel == "ussd":
            return self._build_ussd(phone, seq)
        params = {
            "ToCountry": "US",
            "SmsMessageSid": "",
            "NumMedia": "0",
            "SmsSid": "",
            "Body": CONVERSATION[seq % len(CONVERSATION)],
            "To": FROM_NUMBER,
            "MessageSid": f"SM{self.run_tag:08x}{phone:08x}{seq:016x}",
            "AccountSid": ACCOUNT_SID,
            "From": phone_number(phone),
            "NumSegments": "1",
            "ApiVersion": "2010-04-01",
        }
        params["SmsMessageSid"] = params["SmsSid"] = params["MessageSid"]
        body = urlencode(params).encode()
        signature = self.validator.compute_signature(self.url, params)
        head = (
            f"POST {WEBHOOK_PATH} HTTP/1.1\r\n"
            f"Host: {self.host_header}\r\n"
            "User-Agent: TwilioProxy/1.1\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"X-Twilio-Signature: {signature}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    def _build_ussd(self, phone: int, seq: int) -> bytes:
        walk = seq // len(USSD_WALK)
        form = {
            "sessionId": f"ATUid_{self.run_tag:08x}_{phone}_{walk}",
            "serviceCode": "*123#",
            "phoneNumber": ussd_number(phone, walk),
            "networkCode": "71201",
            "text": USSD_WALK[seq % len(USSD_WALK)],
        }
        body = urlencode(form).encode()
        head = (
            f"POST {USSD_PATH} HTTP/1.1\r\n"
            f"Host: {self.host_header}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    @property
    def walk(self) -> tuple[str, ...]:
        return USSD_WALK if self.channel == "ussd" else CONVERSATION

    def expected(self, seq: int) -> bytes:
        """What reply ``seq`` of a phone must contain (the same for every phone)."""
        expect = USSD_EXPECT if self.channel == "ussd" else SMS_EXPECT
        return expect[seq % len(expect)].encode()

    def get(self, phone: int, seq: int, unique: bool) -> bytes:
        """Request ``seq`` of ``phone``. Past the pool: signed now when the MessageSid must be
        unique (Ruta deduplicates on it), else the pool again (the bare app never reads it)."""
        pool = self.pool[phone]
        if seq < len(pool):
            return pool[seq]
        if not unique:
            return pool[seq % len(pool)]
        self.signed_in_loop += 1
        return self._build(phone, seq)


# --- load generator -------------------------------------------------------------------------


class ResponseError(Exception):
    pass


class Connection(asyncio.Protocol):
    """A raw HTTP/1.1 client connection: one request in flight, Content-Length bodies."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        length_at = head.find(b"\r\ncontent-length:")
        if length_at < 0:
            waiter.set_exception(ResponseError("response without Content-Length"))
            return
        line_end = head.find(b"\r\n", length_at + 2)
        length = int(head[length_at + 17 : line_end if line_end > 0 else len(head)])
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        body = bytes(self.buffer[end + 4 : total])
        del self.buffer[:total]
        status = int(head[9:12])
        waiter.set_result((status, body, b"\r\nconnection: close" in head))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ResponseError(f"connection lost: {exc}"))

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytes, bool]]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.waiter


@dataclass
class Measurement:
    target: str
    concurrency: int
    duration_s: float
    messages: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    connects: int = 0
    per_phone_min: int = 0
    per_phone_max: int = 0
    timed_out: int = 0
    #: Walks (HOLA .. salud, or the four USSD screens) whose last reply came in the window, and
    #: those of them with a reply that was not the flow's (each such reply is also an error).
    walks: int = 0
    walks_failed: int = 0
    wrong_replies: int = 0
    #: CPU seconds and round trips over the measured window (bench/measure.py).
    web_cpu_s: float = math.nan
    postgres_cpu_s: float = math.nan
    round_trips: int = 0
    machine_busy_percent: float = math.nan
    others_cpu_s: float = math.nan
    load_generator_cpu_s: float = math.nan

    def add(self, other: Measurement) -> None:
        """Another round of the same target: its counts, latencies and CPU added to these."""
        busy = (
            self.machine_busy_percent * self.duration_s
            + other.machine_busy_percent * other.duration_s
        ) / (self.duration_s + other.duration_s)
        self.machine_busy_percent = round(busy, 1)
        for name in (
            "duration_s", "messages", "errors", "connects", "timed_out", "walks",
            "walks_failed", "wrong_replies", "web_cpu_s", "postgres_cpu_s", "round_trips",
            "others_cpu_s", "load_generator_cpu_s",
        ):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.error_samples = (self.error_samples + other.error_samples)[:5]
        self.latencies_ms += other.latencies_ms
        self.per_phone_min, self.per_phone_max = other.per_phone_min, other.per_phone_max

    def note_error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(text)

    @property
    def rate(self) -> float:
        return self.messages / self.duration_s

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return math.nan
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]

    def per_message_ms(self, seconds: float) -> float:
        return 1000.0 * seconds / self.messages if self.messages else math.nan

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        del data["latencies_ms"]
        data.update(
            web_cpu_ms_per_message=round(self.per_message_ms(self.web_cpu_s), 2),
            postgres_cpu_ms_per_message=round(self.per_message_ms(self.postgres_cpu_s), 2),
            round_trips_per_message=round(self.round_trips / self.messages, 2)
            if self.messages
            else math.nan,
            messages_per_s=round(self.rate, 1),
            p50_ms=round(self.percentile(50), 2),
            p99_ms=round(self.percentile(99), 2),
            max_ms=round(max(self.latencies_ms, default=math.nan), 2),
        )
        return data


def expected_reply(body: bytes) -> bool:
    if body.startswith((b"CON ", b"END ")):
        return True
    return body.startswith(b"<?xml") and b"<Message>" in body


async def drive(
    name: str,
    port: int,
    book: RequestBook,
    concurrency: int,
    warmup: float,
    duration: float,
    unique_sids: bool,
    probe: Probe | None = None,
    resume: list[int] | None = None,
) -> Measurement:
    """Keep exactly ``concurrency`` phones busy for ``warmup + duration`` seconds; ``probe``
    takes CPU and round-trip snapshots at both edges of the measured window (in a thread)."""
    loop = asyncio.get_running_loop()
    result = Measurement(name, concurrency, duration)
    clock = time.perf_counter
    start = clock()
    measure_from, measure_until = start + warmup, start + warmup + duration
    if probe is not None:
        probe.start(measure_from, measure_until)
    check_replies = unique_sids  # Ruta's replies must be the flow's; the bare app's are fixed
    steps = len(book.walk)
    max_per_phone = 100_000  # a hard bound on the count, whatever the speed

    async def connect() -> Connection:
        _transport, protocol = await loop.create_connection(Connection, HOST, port)
        return protocol

    # Where each phone stopped in an earlier round (``resume``, updated in place, always at the
    # start of a walk): its next message carries a new MessageSid and starts a walk afresh.
    counts = resume if resume is not None else [0] * concurrency
    first = list(counts)

    async def phone(index: int) -> None:
        connection: Connection | None = None
        walk_ok = True
        for seq in range(first[index], max_per_phone):
            if seq % steps == 0:
                walk_ok = True
            counts[index] = seq
            request = book.get(index, seq, unique_sids)
            sent = clock()
            if sent >= measure_until and (resume is None or seq % steps == 0):
                break  # with rounds to come, a walk is finished first (unmeasured)
            try:
                if connection is None or connection.closed:
                    result.connects += 1
                    connection = await connect()
                status, body, close = await connection.send(request)
            except (OSError, ResponseError, ValueError) as exc:
                walk_ok = False
                if sent >= measure_from:
                    result.note_error(f"{type(exc).__name__}: {exc}")
                if connection is not None and connection.transport is not None:
                    connection.transport.close()
                connection = None
                continue
            done = clock()
            right = status == 200 and expected_reply(body)
            if check_replies and book.expected(seq) not in body:
                right = False
            walk_ok = walk_ok and right
            if close:  # sync workers answer "Connection: close": reconnect for the next one
                if connection.transport is not None:
                    connection.transport.close()
                connection = None
            if sent < measure_from or done > measure_until:
                continue  # warm-up, or finished after the window: not counted either way
            result.messages += 1
            result.latencies_ms.append((done - sent) * 1000.0)
            if not right:
                result.wrong_replies += 1
                result.note_error(f"step {seq % steps}: HTTP {status}: {body[:160]!r}")
            if seq % steps == steps - 1:
                result.walks += 1
                result.walks_failed += not walk_ok
        if connection is not None and connection.transport is not None:
            connection.transport.close()

    tasks = [asyncio.create_task(phone(i)) for i in range(concurrency)]
    _done, pending = await asyncio.wait(tasks, timeout=warmup + duration + 30.0)
    for task in pending:  # a server that stopped answering: each stuck phone is an error
        task.cancel()
        result.timed_out += 1
        result.note_error("no reply 30 s after the end of the run")
    await asyncio.gather(*pending, return_exceptions=True)
    result.per_phone_min, result.per_phone_max = min(counts), max(counts)
    if probe is not None:
        probe.fill(result)
    return result


class Probe:
    """Snapshots of CPU (the server's processes, the database's backends, the machine) and of
    round trips at the two edges of the measured window, taken in a thread at those moments."""

    def __init__(self, server_pid: int, backends: Backends | None, counts: Path | None) -> None:
        self.server_pid, self.backends, self.counts = server_pid, backends, counts
        self.snapshots: list[Snapshot] = []
        self.thread: threading.Thread | None = None

    def _take(self) -> Snapshot:
        return Snapshot.take({"web": self.server_pid}, self.backends, self.counts)

    def start(self, at: float, until: float) -> None:
        def run() -> None:
            for moment in (at, until):
                time.sleep(max(0.0, moment - time.perf_counter()))
                self.snapshots.append(self._take())

        self.thread = threading.Thread(target=run, name="probe", daemon=True)
        self.thread.start()

    def fill(self, result: Measurement) -> None:
        assert self.thread is not None
        self.thread.join(timeout=30)
        if len(self.snapshots) != 2:
            return
        window = Window.between(*self.snapshots)
        result.web_cpu_s = round(window.processes["web"], 3)
        result.postgres_cpu_s = round(window.postgres, 3) if self.backends else math.nan
        result.round_trips = window.round_trips
        result.machine_busy_percent = round(window.busy_percent, 1)
        result.others_cpu_s = round(window.others, 2)
        result.load_generator_cpu_s = round(window.me, 2)


def check_ussd(port: int) -> None:
    """One handset walks the USSD flow once; the screens must be the flow's."""
    expect = ("Buscar servicios", "Upala", "Salud", "Recibir todo por SMS")
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        for text, wanted in zip(USSD_WALK, expect, strict=True):
            form = {
                "sessionId": "ATUid_check",
                "serviceCode": "*123#",
                "phoneNumber": "+50688009999",
                "networkCode": "71201",
                "text": text,
            }
            connection.request(
                "POST",
                USSD_PATH,
                urlencode(form),
                {"Content-Type": "application/x-www-form-urlencoded"},
            )
            response = connection.getresponse()
            screen = response.read().decode()
            if response.status != 200 or wanted not in screen:
                raise SystemExit(f"USSD check failed at {text!r}: HTTP {response.status}: {screen}")
    finally:
        connection.close()


def check_conversation(port: int) -> None:
    """One phone walks the flow once; the replies must be the flow's, not a fallback."""
    from twilio.request_validator import RequestValidator

    url = f"http://{HOST}:{port}{WEBHOOK_PATH}"
    expect = {"HOLA": "Buscar servicios", "1": "municipio", "upala": "Salud", "salud": "Tel"}
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        for seq, text in enumerate(CONVERSATION):
            params = {
                "MessageSid": f"SM{'c' * 16}{seq:016x}",  # the shape of a Twilio SID
                "AccountSid": ACCOUNT_SID,
                "From": "+50688009999",
                "To": FROM_NUMBER,
                "Body": text,
                "NumMedia": "0",
            }
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": RequestValidator(TWILIO_TOKEN).compute_signature(url, params),
            }
            connection.request("POST", WEBHOOK_PATH, urlencode(params), headers)
            response = connection.getresponse()
            reply = response.read().decode()
            if response.status != 200 or expect[text] not in reply:
                raise SystemExit(
                    f"conversation check failed at {text!r}: HTTP {response.status}: {reply}"
                )
    finally:
        connection.close()


# --- report ---------------------------------------------------------------------------------


def report(results: list[Measurement], settings: ServerSettings, args: argparse.Namespace) -> bool:
    ruta, bare = results
    ratio = ruta.rate / bare.rate if bare.rate else 0.0
    ratio_ok = ratio >= TARGET_RATIO
    target_p99 = TARGET_USSD_P99_MS if args.channel == "ussd" else TARGET_P99_MS
    p99_ok = ruta.percentile(99) <= target_p99
    clean = all(r.errors == 0 and r.messages > 0 for r in results) and ruta.walks_failed == 0
    passed = ratio_ok and p99_ok and clean
    if args.json:
        print(
            json.dumps(
                {
                    "date": time.strftime("%Y-%m-%d"),
                    "cpus": os.cpu_count(),
                    "concurrency": args.concurrency,
                    "warmup_s": args.warmup,
                    "duration_s": args.duration,
                    "rounds": args.rounds,
                    "gunicorn": asdict(settings),
                    "results": [r.summary() for r in results],
                    "ratio": round(ratio, 3),
                    "targets": {"ratio_min": TARGET_RATIO, "ruta_p99_ms_max": target_p99},
                    "signed_in_loop": args.signed_in_loop,
                    "pass": passed,
                },
                indent=2,
            )
        )
        return passed
    threads = f" --threads {settings.threads}" if settings.worker_class != "sync" else ""
    print(
        f"\n{TITLES[args.channel]}: {args.concurrency} connections, "
        f"{args.duration:g} s measured after {args.warmup:g} s warm-up"
        + (f", {args.rounds} rounds each (alternating)" if args.rounds > 1 else "")
        + f", {os.cpu_count()} CPUs\n"
        f"gunicorn --workers {settings.workers} --worker-class {settings.worker_class}{threads}\n"
    )
    print(f"{'target':<8}{'messages/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'errors':>8}")
    for r in results:
        s = r.summary()
        print(
            f"{r.target:<8}{s['messages_per_s']:>12.1f}{s['p50_ms']:>10.2f}{s['p99_ms']:>10.2f}"
            f"{s['max_ms']:>10.2f}{r.errors:>8d}"
        )
    print(
        "messages per phone, warm-up included (min-max): "
        + ", ".join(f"{r.target} {r.per_phone_min}-{r.per_phone_max}" for r in results)
        + "; connections opened: "
        + ", ".join(f"{r.target} {r.connects}" for r in results)
    )
    unit = "step" if args.channel == "ussd" else "message"
    print(f"\nper {unit}, over the measured window (bench/measure.py):")
    print(f"{'target':<8}{'web CPU ms':>12}{'pg CPU ms':>11}{'round trips':>13}")
    for r in results:
        s = r.summary()
        trips = f"{s['round_trips_per_message']:.2f}" if r.target == "ruta" else "-"
        pg = f"{s['postgres_cpu_ms_per_message']:.2f}" if r.target == "ruta" else "-"
        print(f"{r.target:<8}{s['web_cpu_ms_per_message']:>12.2f}{pg:>11}{trips:>13}")
    for r in results:
        if r.messages:
            print(
                f"machine during {r.target}: {r.machine_busy_percent:.0f}% busy;"
                f" other processes {r.others_cpu_s:.1f} CPU-s,"
                f" load generator {r.load_generator_cpu_s:.1f} CPU-s"
                f" over {r.duration_s:g} s"
            )
    what = "USSD walks (4 screens)" if args.channel == "ussd" else "conversations (4 messages)"
    print(
        f"ruta {what} completed in the window: {ruta.walks}, of which"
        f" {ruta.walks_failed} reached a wrong screen; wrong replies {ruta.wrong_replies}"
    )
    print(
        f"\nratio ruta/bare: {ratio:.3f}  (target >= {TARGET_RATIO}: "
        f"{'PASS' if ratio_ok else 'FAIL'})\n"
        f"ruta p99: {ruta.percentile(99):.2f} ms  (target <= {target_p99:g} ms: "
        f"{'PASS' if p99_ok else 'FAIL'})"
    )
    if args.signed_in_loop:
        print(f"note: {args.signed_in_loop} Ruta requests were signed in the loop (pool small)")
    if ruta.walks_failed:
        print(f"\n!!! ruta: {ruta.walks_failed} of {ruta.walks} walks went wrong !!!")
    for r in results:
        if r.errors or r.messages == 0:
            print(f"\n!!! {r.target}: {r.errors} ERRORS, {r.messages} messages measured !!!")
            for sample in r.error_samples:
                print(f"!!!   {sample}")
    print(f"\nOVERALL: {'PASS' if passed else 'FAIL'}")
    return passed


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="PostgreSQL server to use; the benchmark works in its own --bench-database",
    )
    parser.add_argument("--bench-database", default="ruta_bench", help="dropped schema each run")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--concurrency", type=int, default=32, help="phones = connections")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=5.0, help="unmeasured seconds first")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure each target this many times, alternating (ruta, bare, bare, ruta...), "
        "and report the rounds together; later rounds warm up for at most 2 s",
    )
    # Defaults: the Procfile's web process (gunicorn --workers 2 --threads 6, balanced gthread).
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--worker-class",
        choices=tuple(WORKER_CLASSES),
        default="balanced",
        help="balanced: the Procfile's (gateway.serving), gthread: gunicorn's own",
    )
    parser.add_argument("--threads", type=int, default=6, help="threads per gthread worker")
    parser.add_argument(
        "--gunicorn-config",
        help="extra gunicorn config file for both servers (e.g. hooks that profile a worker)",
    )
    parser.add_argument("--port", type=int, default=8731, help="Ruta; the bare app uses port+1")
    parser.add_argument(
        "--presign-rate",
        type=int,
        default=3000,
        help="pre-sign enough requests for this many messages/s; past the pool, Ruta's are "
        "signed in the loop (counted), the bare app's repeat the pool",
    )
    parser.add_argument("--only", choices=("ruta", "bare"), help="drive one target only")
    parser.add_argument(
        "--channel",
        choices=("sms", "ussd"),
        default="sms",
        help="sms: the signed Twilio webhook; ussd: Africa's Talking USSD menu steps",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.concurrency <= 1000 or args.duration <= 0 or args.warmup < 0:
        parser.error("need 1 <= --concurrency <= 1000, --duration > 0, --warmup >= 0")
    if not 1 <= args.rounds <= 10:
        parser.error("need 1 <= --rounds <= 10")
    if args.duration + args.warmup > 600:
        parser.error("--warmup + --duration is limited to 600 s")
    return args


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    def stop(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = ServerSettings(
        args.workers, args.worker_class, args.threads, config=args.gunicorn_config
    )
    servers: list[Server] = []
    with tempfile.TemporaryDirectory(prefix="ruta-bench-") as tmp, terminate_on_sigterm():
        try:
            database_url = prepare_database(args.database_url, args.bench_database)
            env = ruta_environment(database_url, args.redis_url, args.port, Path(tmp))
            run_cli(env, "db", "upgrade")
            run_cli(env, "flows", "publish", "--by", "bench")
            run_cli(env, "demo", "load")
            counts = Path(tmp) / "round-trips"
            ruta = Server("ruta", "app:app", args.port, settings, hook_environment(env, counts))
            servers.append(ruta)
            bare = Server("bare", "bare_app:app", args.port + 1, settings, env)
            servers.append(bare)
            ruta.wait_ready("/healthz")
            bare.wait_ready("/healthz")
            if args.channel == "ussd":
                check_ussd(args.port)
            else:
                check_conversation(args.port)

            per_phone = len(CONVERSATION) * math.ceil(
                args.presign_rate
                * (args.warmup + args.duration + 10)
                * args.rounds
                / args.concurrency
                / len(CONVERSATION)
            )
            started = time.perf_counter()
            book = RequestBook(
                env["PUBLIC_BASE_URL"],
                f"{HOST}:{args.port}",
                args.concurrency,
                per_phone,
                channel=args.channel,
            )
            log(
                f"pre-signed {per_phone * args.concurrency} requests in "
                f"{time.perf_counter() - started:.1f}s"
            )
            backends = Backends(libpq_url(database_url))
            # Rounds in the order ruta, bare, bare, ruta, ruta, bare...: a machine whose speed
            # drifts during the run (a shared one does) weighs on both targets alike.
            order = [
                pair
                for r in range(args.rounds)
                for pair in ((ruta, bare) if r % 2 == 0 else (bare, ruta))
            ]
            resume: dict[str, list[int]] = {s.name: [0] * args.concurrency for s in servers}
            measured: dict[str, Measurement] = {}
            for server in order:
                if args.only and server.name != args.only:
                    continue
                warmup = args.warmup if server.name not in measured else min(args.warmup, 2.0)
                log(f"driving {server.name} on port {server.port} ...")
                result = asyncio.run(
                    drive(
                        server.name,
                        server.port,
                        book,
                        args.concurrency,
                        warmup,
                        args.duration,
                        unique_sids=server.name == "ruta",
                        probe=Probe(
                            server.process.pid,
                            backends if server is ruta else None,
                            counts if server is ruta else None,
                        ),
                        resume=resume[server.name] if args.rounds > 1 else None,
                    )
                )
                if server.name in measured:
                    measured[server.name].add(result)
                else:
                    measured[server.name] = result
                time.sleep(1.0)  # let the database settle between runs
            results = [
                measured.get(name) or Measurement(name, args.concurrency, args.duration)
                for name in ("ruta", "bare")
            ]
            backends.close()
            args.signed_in_loop = book.signed_in_loop
            for server in servers:
                if server.process.poll() is not None:
                    log(f"{server.name}: gunicorn died during the run:\n{server.tail()}")
            return 0 if report(results, settings, args) else 1
        except KeyboardInterrupt:
            log("interrupted: stopping the servers")
            return 130
        finally:
            for server in servers:
                server.stop()


if __name__ == "__main__":
    sys.exit(main())
