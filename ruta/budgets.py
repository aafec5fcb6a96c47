"""How much a reply may hold on each channel (the flows' ``Budget``), from the configuration:
the webhooks, the spool's drain and the admin's simulator lay screens out alike."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from flask import current_app

from flows.context import PAGE_CHARS, Budget


def page_chars() -> int:
    """Menu pages are laid out alike on SMS and USSD, to the smallest USSD screen configured,
    so an option has the same number on both channels."""
    config = current_app.config
    return _page_chars(config["AT_USSD_MAX_CHARS"], config["USSD_JSON_MAX_CHARS"])


def _page_chars(at_chars: Any, json_chars: Any) -> int:
    return min(PAGE_CHARS, int(at_chars), int(json_chars))


def sms_budget() -> Budget:
    config = current_app.config
    return _sms_budget(
        config["RUTA_SMS_MAX_SEGMENTS"],
        config["RUTA_SMS_TRANSLITERATE"],
        config["AT_USSD_MAX_CHARS"],
        config["USSD_JSON_MAX_CHARS"],
    )


@lru_cache(maxsize=64)  # one per configuration (a Budget is frozen): not built per message
def _sms_budget(segments: Any, transliterate: Any, at_chars: Any, json_chars: Any) -> Budget:
    return Budget(
        "sms",
        int(segments),
        page_chars=_page_chars(at_chars, json_chars),
        plain_labels=bool(transliterate),
    )


def ussd_budget(max_chars: int, service_code: str = "") -> Budget:
    """A USSD screen; end screens name the code to dial again (the one the person dialled
    when ``RUTA_USSD_CODE`` is not set)."""
    code = current_app.config.get("RUTA_USSD_CODE") or service_code
    return _ussd_budget(max_chars, code, page_chars())


@lru_cache(maxsize=64)  # a screen size and a code or two per deployment: not built per step
def _ussd_budget(max_chars: int, code: str, page_chars: int) -> Budget:
    return Budget.ussd(max_chars, dial_code=code, page_chars=page_chars)
