"""The admin in its user's language and time.

Pages, flashes and messages are written in English in the code and translated by gettext
catalogues under ``admin/translations`` (Flask-Babel; see the README for extraction and compiling).
Each user picks a language (``users.language``), else ``RUTA_ADMIN_LANGUAGE`` (default Spanish:
the municipal staff Ruta serves read Spanish). Codes never reach a page: ``word()`` gives the
vocabulary's name in the user's language (ruta/taxonomy.yaml).

Times are stored in UTC. A case or a question is shown in its country's time zone (the policy
file's ``timezones``); lists that mix countries use the user's own zone (``users.time_zone``, else
their country's, else the policy's default). The UTC time is in the ``title`` (shown on hover).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_date, format_datetime
from flask import (
    Flask,
    Response,
    current_app,
    g,
    has_request_context,
    render_template,
    request,
    session,
)
from flask_babel import Babel, get_locale, gettext
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup, escape
from werkzeug.exceptions import HTTPException

from flows import translatable
from ruta import policy as policies
from ruta import taxonomy

LANGUAGES = ("es", "en")
#: How each language names itself, for the language picker.
LANGUAGE_NAMES = {"es": "Español", "en": "English"}
TRANSLATIONS = Path(__file__).parent / "translations"

babel = Babel()


def language() -> str:
    """The current user's language, else the one picked on the login page, else the
    deployment's default."""
    if has_request_context():
        chosen = getattr(current_user, "language", None) or session.get("language")
        if chosen in LANGUAGES:
            return str(chosen)
    default = str(current_app.config.get("RUTA_ADMIN_LANGUAGE") or "es")
    return default if default in LANGUAGES else "es"


def _policy() -> policies.Policy:
    return policies.load(current_app.config.get("RUTA_POLICY_FILE"))


def zone(country: str | None = None) -> ZoneInfo:
    """A country's zone when the time belongs to one; otherwise the user's own."""
    if country:
        return _policy().timezone(country)
    own = getattr(current_user, "time_zone", None) if has_request_context() else None
    if own:
        try:
            return ZoneInfo(own)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    user_country = getattr(current_user, "country", None) if has_request_context() else None
    return _policy().timezone(user_country)


def local(value: datetime | None, country: str | None = None, *, fmt: str = "medium") -> str:
    """``value`` (UTC) as local text in the user's language, e.g. "1 dic 2026, 13:40 CST"."""
    if value is None:
        return "-"
    pattern = {"medium": "d MMM y, HH:mm zzz", "date": "d MMM y", "time": "HH:mm zzz"}[fmt]
    return format_datetime(value, pattern, tzinfo=zone(country), locale=language())


def when(value: datetime | None, country: str | None = None, *, fmt: str = "medium") -> Markup:
    """A ``<time>`` element: local text, the UTC instant in ``datetime`` and on hover."""
    if value is None:
        return Markup("-")
    utc = value.astimezone(ZoneInfo("UTC"))
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        utc.isoformat(timespec="seconds"),
        utc.strftime("%Y-%m-%d %H:%M UTC"),
        escape(local(value, country, fmt=fmt)),
    )


def day(value: date | None) -> str:
    """A calendar day (an agreement's expiry) in the user's language, e.g. "31 ene 2027": a
    date has no time zone, so none is applied."""
    if value is None:
        return "-"
    return format_date(value, "d MMM y", locale=language())


def word(group: str, code: str | None) -> str:
    """A code of the vocabulary in the user's language (``ruta.taxonomy.word``)."""
    return taxonomy.word(group, code, language())


def words(codes: Iterable[str], group: str) -> str:
    """Codes of one group as a list in words (the Jinja filter ``words``): "Salud, Vivienda"."""
    return ", ".join(word(group, code) for code in codes)


#: What a person reads on an admin error page, by status code.
ERRORS = {
    400: _l(
        "The request could not be read. If you were sending a form, reload the page and try again."
    ),
    403: _l("Your role does not give access to this page."),
    404: _l("This page does not exist, or it is not yours to see."),
    405: _l("This address does not take that kind of request."),
    413: _l("What you sent is too large."),
    429: _l("Too many requests. Wait a few minutes and try again."),
}


def error_page(exc: HTTPException) -> Response | None:
    """An admin page's error as a page in the user's language, with the menu to go on from;
    None (the caller answers in plain text) outside the admin's pages, for scripts asking JSON,
    or when the page itself cannot be drawn (the database is down)."""
    if not request.path.startswith("/admin") or request.is_json or exc.code is None:
        return None
    try:
        message = ERRORS.get(exc.code, _l("Something went wrong with this request."))
        html = render_template("admin/error.html", code=exc.code, message=message)
    except Exception:  # the plain-text answer still goes out
        return None
    return Response(html, status=exc.code, mimetype="text/html")


def said(message: str) -> str:
    """A message the domain wrote (a validator issue, an import's reason) in the user's
    language: the English ``Text`` template looked up in the catalogue, its parameters kept."""
    return translatable.said(message, gettext)


def init_app(app: Flask) -> None:
    app.jinja_env.filters["words"] = words
    app.jinja_env.filters["said"] = said
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "en")
    babel.init_app(app, locale_selector=language)

    @app.context_processor
    def i18n() -> dict[str, object]:
        return {
            "when": when,
            "word": word,
            "day": day,
            "page_language": lambda: str(get_locale() or language()),
            "languages": LANGUAGE_NAMES,
        }

    @app.before_request
    def _per_request() -> None:
        # Flask-Babel caches the locale on ``g``, which lives as long as the app context: where
        # one app context serves many requests (a test server) it would outlive its user.
        g.pop("_flask_babel", None)
        # The login page's language links (``?lang=en``) for someone not yet signed in.
        picked = request.args.get("lang")
        if picked in LANGUAGES and request.path.startswith("/admin"):
            session["language"] = picked
