"""Outbound SMS senders built on the official Twilio and Africa's Talking SDKs.

Protection rule: no exception raised from here carries a phone number or a message body,
and provider exceptions are never chained (``from None``) because their text often does.
"""

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import requests
from africastalking.Service import AfricasTalkingException
from africastalking.SMS import SMSService
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client as TwilioClient
from urllib3.exceptions import ProtocolError

__all__ = [
    "AfricasTalkingSender",
    "OutcomeUnknown",
    "SendError",
    "SendResult",
    "Sender",
    "TwilioSender",
    "build_sender",
    "configuration_problem",
    "describe_error",
    "status_callback_url",
]

#: Seconds a provider has to answer a send (``RUTA_PROVIDER_TIMEOUT``).
DEFAULT_TIMEOUT = 10.0

# Twilio error codes where retrying cannot help: invalid 'To' (21211), opted out (21610),
# unreachable / not a mobile number (21612, 21614).
TWILIO_PERMANENT_CODES = frozenset({21211, 21610, 21612, 21614})
# Rate limited (20429) or the sender's queue is full (21611): the same request works later.
TWILIO_TRANSIENT_CODES = frozenset({20429, 21611})
# HTTP statuses that are transient even though they are 4xx.
_TRANSIENT_HTTP_4XX = frozenset({408, 409, 425, 429})

AT_SUCCESS_CODES = frozenset({100, 101, 102})
# RiskHold, InvalidSenderId, InvalidPhoneNumber, UnsupportedNumberType, UserInBlacklist.
AT_PERMANENT_CODES = frozenset({401, 402, 403, 404, 406})
# InsufficientBalance, CouldNotRoute, DoNotDisturb/Duplicate, Internal/Gateway errors.
AT_TRANSIENT_CODES = frozenset({405, 407, 409, 500, 501, 502})


# Words for the codes staff meet on a case page (send errors and delivery reports).
ERROR_WORDS: dict[str, str] = {
    "20003": "credentials refused",
    "20429": "rate limited",
    "21211": "invalid number",
    "21610": "opted out at the provider",
    "21611": "sender queue full",
    "21612": "not reachable",
    "21614": "not a mobile number",
    "30003": "handset unreachable",
    "30005": "unknown number",
    "30006": "landline or unreachable carrier",
    "30007": "filtered by the carrier",
    "401": "risk hold",
    "402": "invalid sender id",
    "403": "invalid number",
    "404": "unsupported number type",
    "405": "insufficient balance",
    "406": "blacklisted",
    "407": "could not route",
    "409": "do not disturb",
    "500": "provider internal error",
    "501": "gateway error",
    "502": "rejected by the gateway",
    "http_error": "HTTP error from the provider",
    "bad_response": "unreadable answer from the provider",
    "no_answer": "no answer from the provider in time",
}


def describe_error(code: str | None) -> str:
    """``code`` with its meaning when known, e.g. "21612 (not reachable)"."""
    if not code:
        return "no reason given"
    words = ERROR_WORDS.get(code)
    return f"{code} ({words})" if words else code


@dataclass(frozen=True)
class SendResult:
    """Outcome of a message the provider accepted."""

    provider: str
    provider_message_id: str
    status: str
    segments: int | None = None


class SendError(Exception):
    """A send the provider did not accept; ``permanent`` says whether a retry can help."""

    def __init__(self, message: str, *, permanent: bool, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.code = code

    def __repr__(self) -> str:
        return f"SendError({self.message!r}, permanent={self.permanent}, code={self.code!r})"


class OutcomeUnknown(SendError):
    """The request may have reached the provider but no answer came (a read timeout, a
    connection broken mid-answer): the message may be out. Sending again blindly could send it
    twice, so the caller settles it later by asking the provider (workers/settlement.py)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=False, code="no_answer")


def _request_failed(provider: str, exc: requests.RequestException) -> SendError:
    """A failed HTTP request: unknown outcome when the provider may have the request, else
    a transient error (nothing reached it: refused, or no connection in time)."""
    text = f"{provider} request failed: {type(exc).__name__}"
    if isinstance(exc, requests.ConnectTimeout):
        return SendError(text, permanent=False)
    broken = isinstance(exc, requests.ConnectionError) and any(
        isinstance(arg, ProtocolError) for arg in exc.args
    )
    if broken or isinstance(exc, requests.ReadTimeout | requests.exceptions.ChunkedEncodingError):
        return OutcomeUnknown(text)
    return SendError(text, permanent=False)


def status_callback_url(config: Mapping[str, Any], channel: str) -> str | None:
    """Where Twilio should post this message's delivery reports (needs ``PUBLIC_BASE_URL``);
    None for Africa's Talking, whose delivery report URL is set per account, not per message."""
    base = config.get("PUBLIC_BASE_URL")
    if channel == "twilio" and base:
        return str(base).rstrip("/") + "/webhooks/twilio/status"
    return None


class Sender(Protocol):
    """Anything that can send one SMS."""

    provider: str

    def send(self, to: str, body: str, *, status_callback: str | None = None) -> SendResult: ...


def _rebase_url(url: str, base: str) -> str:
    """Replace scheme and host of ``url`` with those of ``base``; keep path and query."""
    target = urlsplit(base)
    parts = urlsplit(url)
    path = target.path.rstrip("/") + parts.path
    return urlunsplit((target.scheme, target.netloc, path, parts.query, parts.fragment))


#: Where the Twilio SDK sends an SMS (``Client().messages.create``).
TWILIO_API = "https://api.twilio.com"


def _environment_once(client: TwilioHttpClient, url: str) -> None:
    """The proxy and CA bundle settings of the environment, read now instead of on every send.

    The SDK asks requests to merge them into each request, and requests reads every variable
    of the environment for it (``getproxies``): 0.7 ms of CPU a send, a third of it. The same
    settings for ``url`` go on the session once, and the session stops looking."""
    session = client.session
    if session is None:
        return
    settings = session.merge_environment_settings(url, {}, None, None, None)
    session.proxies.update(settings["proxies"])
    session.verify = settings["verify"]
    session.trust_env = False


class _TwilioHttpClient(TwilioHttpClient):
    """TwilioHttpClient that sends every request to ``base_url`` (Twilio, a fake or a proxy),
    with the environment's settings read once (``_environment_once``)."""

    def __init__(self, base_url: str | None, *, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.base_url = base_url
        _environment_once(self, base_url or TWILIO_API)

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        return super().request(
            method,
            _rebase_url(url, self.base_url) if self.base_url else url,
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )


def _classify_twilio(status: int | None, code: int | None) -> SendError:
    code_str = str(code) if code is not None else None
    text = f"twilio rejected the message (HTTP {status}, code {code_str})"
    if code in TWILIO_PERMANENT_CODES:
        return SendError(text, permanent=True, code=code_str)
    if code in TWILIO_TRANSIENT_CODES or status is None:
        return SendError(text, permanent=False, code=code_str)
    if status >= 500 or status in _TRANSIENT_HTTP_4XX:
        return SendError(text, permanent=False, code=code_str)
    # Any other 4xx is a request Twilio will keep refusing (bad parameters, auth, region).
    return SendError(text, permanent=status >= 400, code=code_str)


def _parse_segments(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


class TwilioSender:
    """Sends via ``twilio.rest.Client().messages.create``."""

    provider = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        *,
        api_base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.from_number = from_number
        self.api_base_url = api_base_url
        http_client = _TwilioHttpClient(api_base_url, timeout=timeout)
        self._client = TwilioClient(account_sid, auth_token, http_client=http_client)

    def send(self, to: str, body: str, *, status_callback: str | None = None) -> SendResult:
        """Send one SMS; raises SendError on any failure."""
        kwargs: dict[str, Any] = {"to": to, "body": body}
        # A Messaging Service SID goes in its own field; Twilio then picks the number.
        if self.from_number.startswith("MG"):
            kwargs["messaging_service_sid"] = self.from_number
        else:
            kwargs["from_"] = self.from_number
        if status_callback:
            kwargs["status_callback"] = status_callback
        try:
            message = self._client.messages.create(**kwargs)
        except requests.RequestException as exc:
            raise _request_failed("twilio", exc) from None
        except TwilioException as exc:
            status = getattr(exc, "status", None)
            code = getattr(exc, "code", None)
            raise _classify_twilio(
                status if isinstance(status, int) else None,
                code if isinstance(code, int) else None,
            ) from None
        if not message.sid:
            raise SendError("twilio answered without a message sid", permanent=False)
        return SendResult(
            provider=self.provider,
            provider_message_id=message.sid,
            status=str(message.status or "queued"),
            segments=_parse_segments(message.num_segments),
        )

    def find_sent(
        self, to: str, body: str, since: datetime, *, skip: Collection[str] = ()
    ) -> str | None:
        """The sid of a message with ``body`` this sender sent to ``to`` at or after ``since``
        (Twilio's clock), if Twilio has one, other than the sids in ``skip`` (messages already
        accounted for). Asked before sending again a message whose outcome is unknown.
        Raises SendError when Twilio cannot be asked (the caller then asks again later)."""
        kwargs: dict[str, Any] = {"to": to, "limit": 20, "page_size": 20}
        if not self.from_number.startswith("MG"):
            kwargs["from_"] = self.from_number
        try:
            messages = self._client.messages.list(**kwargs)
        except requests.RequestException as exc:
            raise SendError(
                f"twilio request failed: {type(exc).__name__}", permanent=False
            ) from None
        except TwilioException:
            raise SendError("twilio refused to list messages", permanent=False) from None
        for message in messages:  # newest first
            created = message.date_created
            if (
                message.body == body
                and created is not None
                and created >= since
                and message.sid not in skip
            ):
                return str(message.sid)
        return None


def _redirect_at_service(service: SMSService, api_base_url: str) -> None:
    """Point an Africa's Talking SMSService at ``api_base_url``.

    The SDK has no base-URL option, so this sets its private ``_baseUrl``.
    test_senders.py checks the attribute still exists, so an SDK upgrade that renames it
    fails the tests instead of silently sending to the real API.
    """
    if not hasattr(service, "_baseUrl"):
        raise RuntimeError("africastalking SDK no longer has SMSService._baseUrl")
    service._baseUrl = api_base_url.rstrip("/") + "/version1"


class AfricasTalkingSender:
    """Sends via ``africastalking.SMS.SMSService.send``, one recipient per call."""

    provider = "africastalking"

    def __init__(
        self,
        username: str,
        api_key: str,
        *,
        sender_id: str | None = None,
        api_base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.sender_id = sender_id
        self.timeout = timeout
        # Own instance rather than africastalking.initialize(): that sets module globals,
        # which would be shared between configs and threads.
        self._service = SMSService(username, api_key)
        if api_base_url:
            _redirect_at_service(self._service, api_base_url)

    def send(self, to: str, body: str, *, status_callback: str | None = None) -> SendResult:
        """Send one SMS; ``status_callback`` is ignored (AT sets DLR URLs per account)."""
        try:
            answer = self._service.send(body, [to], sender_id=self.sender_id, timeout=self.timeout)
        except ValueError:
            # The SDK's own E.164 check; its message includes the number.
            raise SendError(
                "africastalking rejected the number format", permanent=True, code="403"
            ) from None
        except requests.RequestException as exc:
            raise _request_failed("africastalking", exc) from None
        except AfricasTalkingException:
            # The SDK raises with the response text only, so the HTTP status is lost.
            raise SendError(
                "africastalking answered with an HTTP error", permanent=False, code="http_error"
            ) from None
        return self._parse_answer(answer)

    def _parse_answer(self, answer: object) -> SendResult:
        if not isinstance(answer, dict):
            # The SDK returns text when the content type is not exactly application/json.
            raise SendError(
                "africastalking answered with a non-JSON body",
                permanent=False,
                code="bad_response",
            )
        data = answer.get("SMSMessageData")
        recipients = data.get("Recipients") if isinstance(data, dict) else None
        if not isinstance(recipients, list) or not recipients:
            raise SendError(
                "africastalking answered without recipients", permanent=False, code="no_recipients"
            )
        first = recipients[0]
        if not isinstance(first, dict):
            raise SendError(
                "africastalking answered a malformed recipient",
                permanent=False,
                code="bad_response",
            )
        try:
            status_code = int(first.get("statusCode", -1))
        except (TypeError, ValueError):
            status_code = -1
        status = str(first.get("status", ""))
        if status_code in AT_SUCCESS_CODES:
            message_id = first.get("messageId")
            if not message_id or message_id == "None":
                raise SendError(
                    "africastalking answered without a messageId",
                    permanent=False,
                    code="bad_response",
                )
            return SendResult(
                provider=self.provider, provider_message_id=str(message_id), status=status
            )
        text = f"africastalking rejected the message (statusCode {status_code} {status})"
        # Unknown codes are retried: a failed send did not deliver, so a retry cannot duplicate.
        permanent = status_code in AT_PERMANENT_CODES
        raise SendError(text, permanent=permanent, code=str(status_code))


#: What each provider needs before Ruta can send through it.
REQUIRED_SETTINGS: dict[str, tuple[str, ...]] = {
    "twilio": ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER"),
    "africastalking": ("AT_USERNAME", "AT_API_KEY"),
}


def configuration_problem(provider: str, config: Mapping[str, Any]) -> str | None:
    """Why ``build_sender`` would refuse ``provider`` with ``config``, or None when it can send."""
    if provider not in REQUIRED_SETTINGS:
        return f"unknown SMS provider: {provider!r}"
    missing = [name for name in REQUIRED_SETTINGS[provider] if not config.get(name)]
    return f"missing configuration: {', '.join(missing)}" if missing else None


def _require(config: Mapping[str, Any], *names: str) -> list[str]:
    missing = [name for name in names if not config.get(name)]
    if missing:
        raise ValueError(f"missing configuration: {', '.join(missing)}")
    return [str(config[name]) for name in names]


def _optional(config: Mapping[str, Any], name: str) -> str | None:
    value = config.get(name)
    return str(value) if value else None


def build_sender(provider: str, config: Mapping[str, Any]) -> Sender:
    """Build the sender for ``provider`` ("twilio" | "africastalking") from config keys."""
    timeout = float(config.get("RUTA_PROVIDER_TIMEOUT") or DEFAULT_TIMEOUT)
    if provider == "twilio":
        sid, token, from_number = _require(config, *REQUIRED_SETTINGS["twilio"])
        return TwilioSender(
            sid,
            token,
            from_number,
            api_base_url=_optional(config, "TWILIO_API_BASE_URL"),
            timeout=timeout,
        )
    if provider == "africastalking":
        username, api_key = _require(config, *REQUIRED_SETTINGS["africastalking"])
        return AfricasTalkingSender(
            username,
            api_key,
            sender_id=_optional(config, "AT_SENDER_ID"),
            api_base_url=_optional(config, "AT_API_BASE_URL"),
            timeout=timeout,
        )
    raise ValueError(f"unknown SMS provider: {provider!r}")
