"""The `privacy-hub` command line: init, serve, staff, systems, keys, audit, import, db, mail,
retention."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

import audit
from privacy_hub.config import SECRET_KEY_FILE as _SECRET_FILE
from privacy_hub.config import ConfigError, Settings, new_secret
from privacy_hub.db import make_engine, transaction

CLI_ACTOR = audit.Actor("cli", "privacy-hub")


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:  # one line naming the variable, not a traceback
        raise click.ClickException(str(exc)) from None


def _open_hub(settings: Settings | None = None, *, bootstrap: bool = False) -> Any:
    from privacy_hub.hub import Hub

    try:
        return Hub.open(settings or _settings(), bootstrap=bootstrap)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Privacy Hub: the privacy and consent hub of an e-commerce CRM.

    Configuration comes from PRIVACY_HUB_* environment variables; see the README.
    """


def _migrate(settings: Settings) -> None:
    from privacy_hub import migrations

    engine = make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    keystore = None
    if settings.keystore_url and settings.keystore_url != settings.database_url:
        keystore = make_engine(settings.keystore_url)
    try:
        migrations.upgrade(engine, keystore)
    finally:
        engine.dispose()
        if keystore is not None:
            keystore.dispose()


@main.command()
@click.option("--demo", is_flag=True, help="Add demo customers and a demo system, print its key.")
def init(demo: bool) -> None:
    """Create the instance folder, database and keys (safe to run again)."""
    settings = _settings()
    instance = settings.instance_path
    instance.mkdir(parents=True, exist_ok=True, mode=0o700)
    if settings.embedded and settings.secret_key is None:
        secret_path = instance / _SECRET_FILE
        if not secret_path.exists():
            fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(new_secret())
    from privacy_hub.vault.root import FileRootKey

    try:
        settings.resolved()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    _migrate(settings)
    root_created = False
    if not settings.root_key_path.exists():
        if _has_keys(settings):
            # A new root key would open none of them (another node's `init` made them).
            raise click.ClickException(
                f"the root key file {settings.root_key_path} does not exist, and this "
                "database already has keys: set PRIVACY_HUB_ROOT_KEY_FILE to the root key "
                "file `privacy-hub init` created for it")
        FileRootKey.create(settings.root_key_path)
        root_created = True
    hub = _open_hub(settings, bootstrap=True)
    try:
        click.echo(f"instance: {instance}")
        if root_created:
            click.echo(f"root key: {settings.root_key_path} (mode 0600; back it up separately)")
        if demo:
            from privacy_hub.demo import DEMO_SYSTEM, install_demo

            with transaction(hub.sessions) as session:
                api_key, new = install_demo(hub, session)
            click.echo(("demo data installed" if new else "demo data present; issued a new key")
                       + f" for system {DEMO_SYSTEM!r}")
            click.echo(f"api_key: {api_key}")
            _demo_staff(hub)
    finally:
        hub.close()


def _demo_staff(hub: Any) -> None:
    from privacy_hub.demo import DEMO_DPO_EMAIL, DEMO_DPO_PASSWORD, install_demo_staff

    with transaction(hub.sessions) as session:
        enrolment = install_demo_staff(hub, session)
    click.echo(f"demo DPO: {DEMO_DPO_EMAIL} password: {DEMO_DPO_PASSWORD}")
    if enrolment is None:
        click.echo("demo DPO: authenticator already enrolled; for a new one run "
                   f"`privacy-hub staff reset-totp {DEMO_DPO_EMAIL}`")
        return
    click.echo(f"totp_secret: {enrolment.totp_secret}")
    click.echo(f"totp_uri: {enrolment.totp_uri}")


def _has_keys(settings: Settings) -> bool:
    """Whether the key store holds key-encryption keys already (made under some root key)."""
    from privacy_hub.vault.keks import keys_exist

    engine = make_engine(settings.keystore_url or settings.database_url)
    try:
        return keys_exist(engine)
    finally:
        engine.dispose()


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply migrations to an existing database (and key store)."""
    settings = _settings()
    _migrate(settings)
    click.echo("database is at the latest schema")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64))
@click.option("--no-worker", is_flag=True,
              help="Run no background worker in-process (run `privacy-hub worker` instead).")
def serve(host: str, port: int, workers: int, threads: int, no_worker: bool) -> None:
    """Serve the hub with granian, and one background worker per instance."""
    from privacy_hub.server import run

    settings = _settings()
    hub = _open_hub(settings)  # fail here, once, with a clear message, not in every worker
    hub.close()
    click.echo(f"Privacy Hub on http://{host}:{port}  (API docs: http://{host}:{port}/api/docs)",
               err=True)
    run(host=host, port=port, workers=workers, threads=threads,
        background_worker=settings.run_worker_in_process and not no_worker)


@main.command()
@click.option("--once", is_flag=True, help="Run the jobs that are due, then exit.")
@click.option("--poll-interval", default=1.0, show_default=True, type=click.FloatRange(0.05, 3600),
              help="Seconds between looks for due jobs.")
def worker(once: bool, poll_interval: float) -> None:
    """Deliver webhooks and mails from the outbox (SIGTERM: finish the current job, exit)."""
    from privacy_hub.jobs.runners import run_cli

    hub = _open_hub()
    try:
        code = run_cli(hub, once=once, poll_interval=poll_interval,
                       echo=lambda line: click.echo(line, err=True))
    finally:
        hub.close()
    sys.exit(code)


@main.group()
def systems() -> None:
    """Registered downstream systems and their API keys."""


@systems.command("create")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, required=True, help="Repeat for each scope.")
@click.option("--purpose", "purposes", multiple=True, help="Limit the system to these purposes.")
@click.option("--webhook-url", default=None)
def systems_create(name: str, scopes: tuple[str, ...], purposes: tuple[str, ...],
                   webhook_url: str | None) -> None:
    """Register a system and print its API key and webhook secret (shown once)."""
    from privacy_hub.systems import InvalidSystem, SystemExists
    from privacy_hub.usecases import systems as registered
    from privacy_hub.usecases.errors import Invalid

    hub = _open_hub()
    try:
        with transaction(hub.sessions) as session:
            created = registered.register(
                hub, session, name=name, scopes=scopes, purposes=list(purposes) or None,
                webhook_url=webhook_url, actor=CLI_ACTOR)
    except (InvalidSystem, Invalid) as exc:
        raise click.ClickException(
            "; ".join(f"{k}: {', '.join(v)}" for k, v in exc.errors.items())) from None
    except SystemExists as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        hub.close()
    click.echo(f"api_key: {created['api_key']}")
    click.echo(f"webhook_secret: {created['webhook_secret']}")


@systems.command("list")
def systems_list() -> None:
    """List registered systems."""
    from privacy_hub.usecases import systems as registered

    hub = _open_hub()
    try:
        with hub.sessions() as session:
            for info in registered.all_systems(session):
                click.echo(f"{info['name']}\tscopes={','.join(info['scopes'])}")
    finally:
        hub.close()


@main.group()
def keys() -> None:
    """Key management."""


@keys.command("rotate")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--receipts", is_flag=True,
              help="Rotate the receipt signing key instead: a new Ed25519 key signs from now "
                   "on; the JWKS keeps publishing the old ones.")
def keys_rotate(batch_size: int, receipts: bool) -> None:
    """New key-encryption key; re-wrap every data key under it; retire the old one.

    With --receipts: a new receipt signing key instead."""
    hub = _open_hub()
    try:
        if receipts:
            from privacy_hub.usecases.keys import rotate_receipt_key

            done = rotate_receipt_key(hub, actor=CLI_ACTOR)
            click.echo(f"receipt signing key {done['key_id']} signs from now on; retired: "
                       f"{', '.join(done['retired']) or 'none'} (still published in the JWKS, "
                       "so their receipts verify); restart running servers to sign with it")
            return
        from privacy_hub.cli_progress import progress

        with progress() as tracker:
            meter = tracker.task("re-wrapping data keys", unit="keys")
            count = hub.keyring.rotate(hub.sessions, batch_size=batch_size,
                                       progress=meter.update)
        with transaction(hub.sessions) as session:
            status = hub.keyring.kek_status(session)
            primary = next(s["version"] for s in status if s["state"] == "primary")
            audit.record(session, actor=CLI_ACTOR, action="key.rotated",
                         details={"kek_version": primary, "rewrapped": count})
        click.echo(f"key-encryption key version {primary} is primary; "
                   f"{count} data keys re-wrapped; older versions retired")
    finally:
        hub.close()


@main.group("audit")
def audit_group() -> None:
    """The tamper-evident audit log."""


@audit_group.command("verify")
def audit_verify() -> None:
    """Recompute the hash chain and check signed checkpoints; exit 1 if broken."""
    from privacy_hub.usecases.accountability import verify_audit_chain

    hub = _open_hub()
    try:
        with hub.read_sessions() as session:
            report = verify_audit_chain(hub, session)
    finally:
        hub.close()
    click.echo(f"entries: {report['entries']}")
    click.echo(f"head: seq={report['head']['seq']} hash={report['head']['hash']}")
    click.echo(f"checkpoints verified: {report['checkpoints_verified']}")
    if report["pruned_below_seq"] is not None:
        click.echo(f"pruned: entries below seq {report['pruned_below_seq']} (the kept chain "
                   "starts at a signed checkpoint)")
    events = report.get("consent_events")
    if events is not None:  # R-CREC-03: the consent events the chain vouches for
        click.echo(f"consent events: {events['checked']} match their hash, "
                   f"{events['unhashed']} recorded before hashing, {events['missing']} deleted")
    if report["ok"]:
        click.echo("ok: the chain is intact")
        return
    click.echo(f"BROKEN at seq {report['first_bad_seq']}: {report['problem']}", err=True)
    sys.exit(1)


@main.group()
def mail() -> None:
    """The mail the embedded default wrote to <instance>/outbox/ (no SMTP host set)."""


def _outbox_folder() -> Path:
    from privacy_hub.jobs.mail import OUTBOX_FOLDER

    return _settings().instance_path / OUTBOX_FOLDER


@mail.command("list")
def mail_list() -> None:
    """Every message in the outbox folder, oldest first: id, date, to, subject."""
    from privacy_hub.jobs.mailbox import stored_mails

    mails = stored_mails(_outbox_folder())
    if not mails:
        click.echo("no mail in the outbox folder")
    for m in mails:
        click.echo(f"{m.id}  {m.date}  {m.to}  {m.subject}")


@mail.command("show")
@click.argument("which", default="latest")
def mail_show(which: str) -> None:
    """One message as text, its link included: an id from `mail list`, its job id's first
    characters, or `latest`. Links are printed here, never logged."""
    from privacy_hub.jobs.mailbox import find, plain_text

    found = find(_outbox_folder(), which)
    if found is None:
        raise click.ClickException(f"no mail {which!r} in the outbox folder "
                                   "(`privacy-hub mail list` lists them)")
    click.echo(plain_text(found))


def _import_source(_ctx: click.Context, _param: click.Parameter,
                   value: str | None) -> str | None:
    """An organisation's name for the Art. 14 notice and the audit log: never an address."""
    if value is None:
        return None
    value = value.strip()
    if not 0 < len(value) <= 100 or "@" in value or not value.isprintable():
        raise click.BadParameter("the name of who the data came from (1 to 100 printable "
                                 "characters), e.g. partner; not an email address")
    return value


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1, 50_000))
@click.option("--source", callback=_import_source, metavar="NAME",
              help="Who the data came from, when not from the customers themselves (e.g. "
                   "partner): each customer loaded is sent the Art. 14 notice within days, "
                   "or at the first direct marketing use if that comes first")
def import_(file: Path, batch_size: int, source: str | None) -> None:
    """Bulk-load customers from a CSV file (header row; see the README for columns)."""
    from privacy_hub.cli_progress import count_lines, progress
    from privacy_hub.importer import import_csv

    hub = _open_hub()
    try:
        with progress() as tracker:
            # At most a row a line, less the header: an honest total for the time left.
            meter = tracker.task("import", total=max(count_lines(file) - 1, 0))
            report = import_csv(hub, file, batch_size=batch_size, source=source,
                                progress=meter.update)
    finally:
        hub.close()
    for line, errors in report.rejected:
        click.echo(f"line {line}: " + "; ".join(errors), err=True)
    click.echo(f"imported {report.created} new, updated {report.updated}, "
               f"rejected {len(report.rejected)} rows")
    if report.rejected:
        sys.exit(1 if not (report.created or report.updated) else 0)


# The staff commands live in their own module; they join the group here, once `main` exists.
from privacy_hub.cli_retention import retention  # noqa: E402
from privacy_hub.cli_staff import staff  # noqa: E402

main.add_command(staff)
main.add_command(retention)
