"""The signed-in user's own settings: language, time zone, and the phone for test sends."""

from __future__ import annotations

from zoneinfo import available_timezones

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import refresh
from flask_login import current_user

from admin.audit import audit
from admin.i18n import LANGUAGE_NAMES, LANGUAGES
from admin.permissions import requires
from ruta.contacts import InvalidNumber, normalise_number
from ruta.db import db
from ruta.models import User

bp = Blueprint("admin_account", __name__, url_prefix="/admin/account")
NAV = [("dashboard", "admin_account.edit", _l("My account"))]

#: The zones of the countries Ruta serves first, then UTC; any other IANA zone may be typed.
COMMON_ZONES = (
    "America/Costa_Rica",
    "America/Guatemala",
    "America/Tegucigalpa",
    "America/Panama",
    "America/Mexico_City",
    "America/El_Salvador",
    "America/Belize",
    "UTC",
)


@bp.route("", methods=["GET", "POST"])
@requires("dashboard")
def edit() -> ResponseReturnValue:
    with db.transaction() as session:
        user = session.get(User, int(current_user.id))
        assert user is not None  # the login loader checked it
        if request.method == "POST":
            problems = []
            language = request.form.get("language", "")
            zone = request.form.get("time_zone", "").strip()
            phone = request.form.get("phone", "").strip()
            if language not in LANGUAGES:
                problems.append(_("Choose a language from the list."))
            if zone and zone not in available_timezones():
                problems.append(_("%(zone)s is not a time zone.", zone=zone))
            number = None
            if phone:
                try:
                    number = normalise_number(phone)
                except InvalidNumber:
                    problems.append(
                        _("Write the phone in international form, for example +50688881234.")
                    )
            if not problems:
                user.language, user.time_zone, user.phone = language, zone or None, number
                audit(session, "account.update", "user", user.id)
                current_user.language, current_user.time_zone = user.language, user.time_zone
                refresh()  # this very response is already in the new language
                flash(_("Your settings are saved."))
                return redirect(url_for("admin_account.edit"))
            for problem in problems:
                flash(problem)
        return render_template(
            "admin/account.html",
            user=user,
            languages=LANGUAGE_NAMES,
            zones=COMMON_ZONES,
        )
