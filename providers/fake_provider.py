"""Fake Twilio + Africa's Talking REST server: the edge of the world for tests and benchmarks.

It speaks just enough of each provider's send API for the official SDKs to parse the answers,
records every accepted message, and can be scripted to fail.
"""

import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from flows.encoding import sms_cost

__all__ = ["PROVIDERS", "FakeProviderServer", "FakeProviderState", "create_app", "serve"]

PROVIDERS = ("twilio", "africastalking")

_E164 = re.compile(r"^\+\d{4,15}$")

# Messages as Twilio words them; some quote the number, as the real API does, so tests can
# check that our senders keep it out of their errors.
_TWILIO_ERRORS: dict[int, str] = {
    20003: "Authenticate",
    20429: "Too Many Requests",
    21211: "The 'To' number {to} is not a valid phone number.",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number: {to}, is not currently reachable using the 'From' number.",
    21614: "'To' number {to} is not a valid mobile number",
}

_AT_STATUSES: dict[int, str] = {
    100: "Processed",
    101: "Success",
    102: "Queued",
    401: "RiskHold",
    402: "InvalidSenderId",
    403: "InvalidPhoneNumber",
    404: "UnsupportedNumberType",
    405: "InsufficientBalance",
    406: "UserInBlacklist",
    407: "CouldNotRoute",
    409: "DoNotDisturbRejection",
    500: "InternalServerError",
    501: "GatewayError",
    502: "RejectedByGateway",
}


def count_segments(body: str) -> int:
    """Segments for ``body``, as the provider would bill them."""
    return sms_cost(body).segments


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _check_provider(provider: str) -> None:
    if provider not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r}; expected one of {PROVIDERS}")


def _normalise_response(entry: int | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(entry, int):
        return {"http_status": entry}
    if "http_status" not in entry:
        raise ValueError("each scripted response needs an http_status")
    return dict(entry)


class FakeProviderState:
    """Recorded messages, scripted responses and failing numbers, shared by all threads."""

    def __init__(self, on_record: Callable[[dict[str, Any]], None] | None = None) -> None:
        self._on_record = on_record  # e.g. `ruta dev` printing and keeping each SMS
        self._lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []
        self._scripts: dict[str, deque[dict[str, Any]]] = {p: deque() for p in PROVIDERS}
        self._fail_numbers: dict[str, dict[str, int]] = {p: {} for p in PROVIDERS}
        self._holds: dict[str, deque[float]] = {p: deque() for p in PROVIDERS}
        self._refusals: dict[str, dict[str, Any] | None] = {p: None for p in PROVIDERS}
        self._twilio_resources: list[dict[str, Any]] = []
        # Send requests being answered, counted per reset: one still held from before the
        # last reset (a killed client's) does not count after it.
        self._generation = 0
        self._in_flight: dict[tuple[str, int], int] = {}
        self._most_in_flight = dict.fromkeys(PROVIDERS, 0)

    def entered(self, provider: str) -> tuple[str, int]:
        """A send request to ``provider`` is being answered (until ``left`` with what this
        returns)."""
        with self._lock:
            key = (provider, self._generation)
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
            self._most_in_flight[provider] = max(
                self._most_in_flight[provider], self._in_flight[key]
            )
            return key

    def left(self, key: tuple[str, int]) -> None:
        with self._lock:
            self._in_flight[key] -= 1

    def most_in_flight(self, provider: str) -> int:
        """The most send requests to ``provider`` answered at once since the last reset."""
        with self._lock:
            return self._most_in_flight[provider]

    def record(self, message: dict[str, Any]) -> None:
        with self._lock:
            self._messages.append(dict(message))
        if self._on_record is not None:
            self._on_record(dict(message))

    def hold(self, provider: str, seconds: float) -> None:
        """Accept and record the next message to ``provider``, then hold the answer: the
        provider has it, the client does not know yet (a crash then makes a duplicate)."""
        _check_provider(provider)
        with self._lock:
            self._holds[provider].append(seconds)

    def wait_if_held(self, provider: str) -> None:
        with self._lock:
            seconds = self._holds[provider].popleft() if self._holds[provider] else 0.0
        if seconds:
            time.sleep(seconds)

    def messages(self, provider: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(m) for m in self._messages if provider in (None, m["provider"])]

    def add_twilio_resource(self, resource: Mapping[str, Any]) -> None:
        with self._lock:
            self._twilio_resources.append(dict(resource))

    def twilio_resources(self) -> list[dict[str, Any]]:
        """Twilio Message resources as the API returns them, newest first."""
        with self._lock:
            return [dict(r) for r in reversed(self._twilio_resources)]

    def reset(self) -> None:
        with self._lock:
            self._messages.clear()
            self._twilio_resources.clear()
            for provider in PROVIDERS:
                self._holds[provider].clear()
                self._scripts[provider].clear()
                self._fail_numbers[provider].clear()
                self._refusals[provider] = None
                self._most_in_flight[provider] = 0
            self._generation += 1

    def script(self, provider: str, responses: Iterable[int | Mapping[str, Any]]) -> None:
        """Queue responses for the next requests to ``provider``.

        Each entry is an HTTP status or a dict with ``http_status`` and optionally ``code``
        (Twilio error code), ``delay`` (seconds before answering), ``body`` and
        ``content_type`` (answer this raw body instead). A 2xx entry without ``body`` only
        applies its delay and then handles the request normally.
        """
        _check_provider(provider)
        entries = [_normalise_response(entry) for entry in responses]
        with self._lock:
            self._scripts[provider].extend(entries)

    def next_scripted(self, provider: str) -> dict[str, Any] | None:
        with self._lock:
            queue = self._scripts[provider]
            return queue.popleft() if queue else None

    def fail_number(self, provider: str, number: str, code: int | None = None) -> None:
        """Make sends to ``number`` fail permanently (default 21610 / 406)."""
        _check_provider(provider)
        if code is None:
            code = 21610 if provider == "twilio" else 406
        with self._lock:
            self._fail_numbers[provider][number] = int(code)

    def failure_for(self, provider: str, number: str) -> int | None:
        with self._lock:
            refusal = self._refusals[provider]
            if refusal is not None and refusal.get("code") and provider == "africastalking":
                return int(refusal["code"])
            return self._fail_numbers[provider].get(number)

    def refuse_every_send(
        self, provider: str, http_status: int = 400, code: int | None = None
    ) -> None:
        """Refuse every send to ``provider`` until reset: Twilio answers ``http_status`` with
        ``code``; Africa's Talking answers each recipient with ``code`` as its statusCode, or
        the whole request with ``http_status`` when no code is given."""
        _check_provider(provider)
        with self._lock:
            self._refusals[provider] = {"http_status": int(http_status), "code": code}

    def refusal(self, provider: str) -> dict[str, Any] | None:
        with self._lock:
            refusal = self._refusals[provider]
            return dict(refusal) if refusal is not None else None


def _twilio_error(http_status: int, code: int, to: str = "") -> Response:
    message = _TWILIO_ERRORS.get(code, "Error {code}").format(to=to, code=code)
    resp = jsonify(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": http_status,
        }
    )
    resp.status_code = http_status
    return resp


def _at_json(payload: Any, status: int = 201) -> Response:
    # The AT SDK compares the content type literally: no charset allowed.
    return Response(json.dumps(payload), status=status, content_type="application/json")


def _apply_script(provider: str, state: FakeProviderState) -> Response | None:
    """Answer from the script if one is queued; None means handle the request normally."""
    entry = state.next_scripted(provider)
    if entry is None:
        return None
    delay = float(entry.get("delay") or 0)
    if delay > 0:
        time.sleep(delay)
    http_status = int(entry["http_status"])
    if "body" in entry:
        return Response(
            str(entry["body"]),
            status=http_status,
            content_type=str(entry.get("content_type") or "text/plain"),
        )
    if 200 <= http_status < 300:
        return None
    if provider == "twilio":
        default_code = 20429 if http_status == 429 else http_status
        return _twilio_error(http_status, int(entry.get("code") or default_code))
    return Response(
        "Too Many Requests" if http_status == 429 else "Internal Server Error",
        status=http_status,
        content_type="text/plain",
    )


def create_app(state: FakeProviderState | None = None) -> Flask:
    """Build the Flask app; ``app.config["FAKE_STATE"]`` holds its state."""
    state = state or FakeProviderState()
    app = Flask("ruta_fake_provider")
    app.config["FAKE_STATE"] = state
    sends = {"twilio_create_message": "twilio", "at_send_messages": "africastalking"}

    @app.before_request
    def enter_send() -> None:
        provider = sends.get(request.endpoint or "")
        if provider is not None:
            g.sending = state.entered(provider)

    @app.teardown_request
    def leave_send(_exc: BaseException | None) -> None:
        sending = g.pop("sending", None)
        if sending is not None:
            state.left(sending)

    def twilio_unauthorised(account_sid: str) -> Response | None:
        auth = request.authorization
        if (
            auth is None
            or auth.type != "basic"
            or not auth.password
            or not (auth.username == account_sid or str(auth.username).startswith("SK"))
        ):
            resp = _twilio_error(401, 20003)
            resp.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
            return resp
        return None

    @app.get("/2010-04-01/Accounts/<account_sid>/Messages.json")
    def twilio_list_messages(account_sid: str) -> Response:
        """Read multiple Message resources, newest first, filtered by ``To`` and ``From``
        (one page; the date filters are not implemented)."""
        refused = twilio_unauthorised(account_sid)
        if refused is not None:
            return refused
        to, from_ = request.args.get("To"), request.args.get("From")
        try:
            size = max(1, min(int(request.args.get("PageSize", "50")), 1000))
        except ValueError:
            return _twilio_error(400, 20001)
        found = [
            r
            for r in state.twilio_resources()
            if r["account_sid"] == account_sid
            and to in (None, r["to"])
            and from_ in (None, r["from"])
        ][:size]
        uri = f"/2010-04-01/Accounts/{account_sid}/Messages.json?PageSize={size}&Page=0"
        return jsonify(
            {
                "messages": found,
                "end": max(len(found) - 1, 0),
                "first_page_uri": uri,
                "next_page_uri": None,
                "page": 0,
                "page_size": size,
                "previous_page_uri": None,
                "start": 0,
                "uri": uri,
            }
        )

    @app.post("/2010-04-01/Accounts/<account_sid>/Messages.json")
    def twilio_create_message(account_sid: str) -> Response:
        refused = twilio_unauthorised(account_sid)
        if refused is not None:
            return refused
        scripted = _apply_script("twilio", state)
        if scripted is not None:
            return scripted
        form = request.form
        to = form.get("To", "")
        from_ = form.get("From") or None
        service_sid = form.get("MessagingServiceSid") or None
        body = form.get("Body", "")
        if not to:
            return _twilio_error(400, 21604)
        if not (from_ or service_sid):
            return _twilio_error(400, 21603)
        if not body:
            return _twilio_error(400, 21602)
        if not _E164.match(to):
            return _twilio_error(400, 21211, to)
        refusal = state.refusal("twilio")
        if refusal is not None:
            status = refusal["http_status"]
            return _twilio_error(status, int(refusal["code"] or status), to)
        failure = state.failure_for("twilio", to)
        if failure is not None:
            return _twilio_error(400, failure, to)

        sid = "SM" + uuid.uuid4().hex
        now = format_datetime(datetime.now(UTC), usegmt=True)
        uri = f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json"
        resource = {
            "account_sid": account_sid,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": from_,
            "messaging_service_sid": service_sid,
            "num_media": "0",
            "num_segments": str(count_segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            # Messaging Service sends start as "accepted", direct sends as "queued".
            "status": "accepted" if service_sid and not from_ else "queued",
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": to,
            "uri": uri,
        }
        state.add_twilio_resource(resource)
        state.record(
            {
                "provider": "twilio",
                "to": to,
                "from": from_ or service_sid,
                "body": body,
                "id": sid,
                "received_at": _now_iso(),
                "status_callback": form.get("StatusCallback") or None,
            }
        )
        state.wait_if_held("twilio")
        resp = jsonify(resource)
        resp.status_code = 201
        return resp

    @app.post("/version1/messaging")
    def at_send_messages() -> Response:
        if not request.headers.get("apiKey"):
            return Response(
                "The supplied authentication is invalid", status=401, content_type="text/plain"
            )
        scripted = _apply_script("africastalking", state)
        if scripted is not None:
            return scripted
        refusal = state.refusal("africastalking")
        if refusal is not None and not refusal["code"]:
            return Response(
                "Internal Server Error", status=refusal["http_status"], content_type="text/plain"
            )
        form = request.form
        missing = [name for name in ("username", "to", "message") if not form.get(name)]
        if missing:
            return Response(
                f"Request is missing required form field '{missing[0]}'",
                status=400,
                content_type="text/plain",
            )
        sender = form.get("from") or None
        body = form["message"]
        recipients = []
        sent = 0
        for raw in form["to"].split(","):
            number = raw.strip()
            failure = state.failure_for("africastalking", number)
            if failure is None and not _E164.match(number):
                failure = 403
            if failure is not None:
                code = failure if 400 <= failure < 600 else 406
                recipients.append(
                    {
                        "statusCode": code,
                        "number": number,
                        "status": _AT_STATUSES.get(code, "Failed"),
                        "cost": "0",
                        "messageId": "None",
                    }
                )
                continue
            message_id = "ATXid_" + uuid.uuid4().hex
            sent += 1
            recipients.append(
                {
                    "statusCode": 101,
                    "number": number,
                    "status": "Success",
                    "cost": "KES 0.8000",
                    "messageId": message_id,
                }
            )
            state.record(
                {
                    "provider": "africastalking",
                    "to": number,
                    "from": sender,
                    "body": body,
                    "id": message_id,
                    "received_at": _now_iso(),
                    "status_callback": None,
                }
            )
        state.wait_if_held("africastalking")
        summary = f"Sent to {sent}/{len(recipients)} Total Cost: KES {0.8 * sent:.4f}"
        return _at_json({"SMSMessageData": {"Message": summary, "Recipients": recipients}})

    @app.get("/_fake/messages")
    def fake_messages() -> Response:
        return jsonify(state.messages(request.args.get("provider") or None))

    @app.delete("/_fake/messages")
    def fake_reset() -> Response:
        state.reset()
        return jsonify({"ok": True})

    @app.post("/_fake/script")
    def fake_script() -> tuple[Response, int] | Response:
        payload = request.get_json(silent=True) or {}
        provider = payload.get("provider", "")
        try:
            if "responses" in payload:
                state.script(provider, payload["responses"])
            for number, code in (payload.get("fail_numbers") or {}).items():
                state.fail_number(provider, number, code)
            if payload.get("refuse"):
                refuse = payload["refuse"]
                state.refuse_every_send(
                    provider, int(refuse.get("http_status", 400)), refuse.get("code")
                )
        except (ValueError, TypeError) as exc:
            return jsonify({"error": str(exc)}), 400
        return jsonify({"ok": True})

    return app


class _QuietRequestHandler(WSGIRequestHandler):
    """Skips the per-request access log line, which would swamp benchmark output."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class FakeProviderServer:
    """Serves the fake on loopback in a daemon thread; use as a context manager."""

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        quiet: bool = True,
        on_record: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.state = FakeProviderState(on_record)
        self.app = create_app(self.state)
        self._host = host
        self._port = port
        self._quiet = quiet
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "FakeProviderServer":
        if self._server is not None:
            return self
        self._server = make_server(
            self._host,
            self._port,
            self.app,
            threaded=True,
            request_handler=_QuietRequestHandler if self._quiet else None,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-provider", daemon=True
        )
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeProviderServer is not started")
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def messages(self, provider: str | None = None) -> list[dict[str, Any]]:
        return self.state.messages(provider)

    def reset(self) -> None:
        self.state.reset()

    def script(self, provider: str, responses: Iterable[int | Mapping[str, Any]]) -> None:
        self.state.script(provider, responses)

    def hold(self, provider: str, seconds: float) -> None:
        self.state.hold(provider, seconds)

    def fail_number(self, provider: str, number: str, code: int | None = None) -> None:
        self.state.fail_number(provider, number, code)

    def refuse_every_send(
        self, provider: str, http_status: int = 400, code: int | None = None
    ) -> None:
        self.state.refuse_every_send(provider, http_status, code)

    def most_in_flight(self, provider: str) -> int:
        return self.state.most_in_flight(provider)

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> "FakeProviderServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve(host: str = "127.0.0.1", port: int = 8099, *, quiet: bool = False) -> None:
    """Serve the fake until interrupted (for ``ruta fake-provider``)."""
    handler = _QuietRequestHandler if quiet else None
    server = make_server(host, port, create_app(), threaded=True, request_handler=handler)
    print(f"fake provider listening on http://{host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
