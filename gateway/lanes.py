"""The webhooks that carry people's messages, served as plain WSGI.

Every inbound SMS and USSD step goes through one of a few form-posting webhooks, at the rate
people write. Through Flask each paid for a request context, URL matching, a form parser and
a response object, about a tenth of its CPU. Here such a request is read and answered in a few
lines, inside the edge app's application context (its configuration and extensions, which the
handlers read as they do under Flask).

Only a request that looks as the provider sends it takes the lane: ``POST``, a form-encoded body
of a stated length within ``MAX_CONTENT_LENGTH``. Anything else goes to the edge app, untouched.
A handler validates before it acts: when it refuses (``BadField``, an ``HTTPException`` such as
a wrong callback token, ``Fallback``), nothing has happened yet, and the request is replayed
through the edge app with the body already read, so every refusal is the edge app's own answer,
word for word. An error after that (the database, Redis) is answered as the edge app answers one.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from flask import Flask
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from gateway.fields import BadField

log = logging.getLogger("ruta")

#: What a client is told when something failed on our side (the trace is logged, never sent).
UNAVAILABLE_TEXT = "Service unavailable, try again later\n"

_FORM = "application/x-www-form-urlencoded"
#: The content type's options the lane takes (the body is read as UTF-8, as the edge app does).
_UTF8 = frozenset({"", "charset=utf-8", 'charset="utf-8"', "charset=utf8"})
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class Fallback(Exception):
    """A handler cannot take this request (say, no PUBLIC_BASE_URL to check a signature
    against): the edge app serves it."""


@dataclass(frozen=True)
class Incoming:
    """A request on the lane: its form, its WSGI environ and the path's token, if any."""

    form: MultiDict[str, str]
    environ: dict[str, Any]
    token: str | None = None


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    mimetype: str


Handler = Callable[[Incoming], Answer]


def signed_url(incoming: Incoming, public_base_url: str | None) -> str:
    """The URL a provider signed: PUBLIC_BASE_URL plus the path and the raw query string (the
    edge app works it out from the request's own URL when PUBLIC_BASE_URL is not set)."""
    if not public_base_url:
        raise Fallback
    # As the edge app's ``public_url``: the path within the app (``request.path``), no mount point.
    environ = incoming.environ
    query = environ.get("QUERY_STRING", "")
    return (
        public_base_url.rstrip("/") + environ.get("PATH_INFO", "") + (f"?{query}" if query else "")
    )


def form_pairs(text: str) -> list[tuple[str, str]]:
    """A form-encoded body's fields, as ``parse_qsl(text, keep_blank_values=True)`` reads them
    (the edge app's parser agrees), with what it does per field done only where a field needs
    it: most of a provider's fields hold no ``+`` or ``%``."""
    pairs = []
    for field in text.split("&"):
        if not field:
            continue
        name, _, value = field.partition("=")
        if "+" in name or "%" in name:
            name = unquote(name.replace("+", " "), errors="werkzeug.url_quote")
        if "+" in value or "%" in value:
            value = unquote(value.replace("+", " "), errors="werkzeug.url_quote")
        pairs.append((name, value))
    return pairs


class Lanes:
    """WSGI: the lane's webhooks served here, everything else (and every refusal) by ``edge``."""

    def __init__(self, edge: Flask, routes: dict[str, Handler], token_routes: dict[str, Handler]):
        """``routes``: exact paths. ``token_routes``: ``/webhooks/<provider>/<token>/<what>``
        keyed by ``"/webhooks/<provider>/*/<what>"``."""
        self.edge = edge
        self.routes = routes
        self.token_routes = token_routes
        self.max_length = int(edge.config.get("MAX_CONTENT_LENGTH") or 0)

    def handler(self, path: str) -> tuple[Handler, str | None] | None:
        handler = self.routes.get(path)
        if handler is not None:
            return handler, None
        parts = path.split("/")
        if len(parts) == 5 and parts[0] == "" and parts[1] == "webhooks" and parts[3]:
            handler = self.token_routes.get(f"/webhooks/{parts[2]}/*/{parts[4]}")
            if handler is not None:
                return handler, parts[3]
        return None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        found = self.handler(environ.get("PATH_INFO", ""))
        length = self._length(environ) if found is not None else None
        if found is None or length is None:
            return self.edge.wsgi_app(environ, start_response)
        handler, token = found
        body = environ["wsgi.input"].read(length) if length else b""
        try:
            form = MultiDict(form_pairs(body.decode()))
        except UnicodeDecodeError:
            return self._replay(environ, body, start_response)
        with self.edge.app_context():
            try:
                answer = handler(Incoming(form, environ, token))
            except (BadField, HTTPException, Fallback):
                return self._replay(environ, body, start_response)
            except Exception:
                log.exception("unhandled error")
                answer = Answer(503, UNAVAILABLE_TEXT, "text/plain")
        data = answer.body.encode("utf-8")
        start_response(
            f"{answer.status} {HTTP_STATUS_CODES[answer.status].upper()}",
            [
                ("Content-Type", f"{answer.mimetype}; charset=utf-8"),
                ("Content-Length", str(len(data))),
            ],
        )
        return [data]

    def _length(self, environ: dict[str, Any]) -> int | None:
        """The body's length when the request is one the lane takes, else None."""
        if environ.get("REQUEST_METHOD") != "POST" or environ.get("HTTP_TRANSFER_ENCODING"):
            return None
        mimetype, _, options = environ.get("CONTENT_TYPE", "").lower().partition(";")
        if mimetype.strip() != _FORM or options.replace(" ", "") not in _UTF8:
            return None
        length = environ.get("CONTENT_LENGTH", "")
        if not length.isdigit() or int(length) > self.max_length:
            return None
        return int(length)

    def _replay(
        self, environ: dict[str, Any], body: bytes, start_response: StartResponse
    ) -> Iterable[bytes]:
        environ["wsgi.input"] = io.BytesIO(body)
        return self.edge.wsgi_app(environ, start_response)
