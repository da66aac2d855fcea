"""`privacy-hub staff ...`: the console's staff members, from the command line."""

from __future__ import annotations

import sys
from typing import Any

import click

from privacy_hub.cli import CLI_ACTOR, _open_hub
from privacy_hub.db import transaction


@click.group()
def staff() -> None:
    """Console staff: who may sign in, with which role."""


def _print_enrolment(enrolment: Any) -> None:
    click.echo(f"totp_uri: {enrolment.totp_uri}")
    click.echo("recovery_codes: " + " ".join(enrolment.recovery_codes))
    if sys.stdout.isatty():
        import segno

        segno.make(enrolment.totp_uri, error="m").terminal(compact=True)


def _staff_call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    from privacy_hub.usecases.errors import Invalid, UseCaseError

    hub = _open_hub()
    try:
        with transaction(hub.sessions) as session:
            return fn(hub, session, *args, **kwargs)
    except Invalid as exc:
        raise click.ClickException(
            "; ".join(f"{k}: {', '.join(v)}" for k, v in exc.errors.items())) from None
    except UseCaseError as exc:
        raise click.ClickException(exc.detail) from None
    finally:
        hub.close()


@staff.command("create")
@click.argument("email")
@click.option("--role", required=True, type=click.Choice(["admin", "dpo", "agent", "auditor"]))
def staff_create(email: str, role: str) -> None:
    """Add a staff member; the password is read from standard input (one line).

    Prints the authenticator's otpauth URI (`totp_uri: ...`) and the recovery codes, once.
    """
    from privacy_hub.usecases import staff as staff_cases

    password = sys.stdin.readline().rstrip("\r\n")
    _, enrolment = _staff_call(staff_cases.create, email=email, role=role, password=password,
                               actor=CLI_ACTOR)
    click.echo(f"staff_id: {enrolment.staff_id}")
    _print_enrolment(enrolment)


@staff.command("list")
def staff_list() -> None:
    """List staff members: id, role, status, address."""
    from privacy_hub.usecases import staff as staff_cases

    for member in _staff_call(staff_cases.all_staff):
        status = "active" if member["active"] else "disabled"
        click.echo(f"{member['id']}\t{member['role']}\t{status}\t{member['email']}")


@staff.command("disable")
@click.argument("who")
def staff_disable(who: str) -> None:
    """Disable a staff member (WHO: id or email address); their session ends at once."""
    from privacy_hub.usecases import staff as staff_cases

    member = _staff_call(staff_cases.disable, who, actor=CLI_ACTOR)
    click.echo(f"disabled: {member['id']}")


@staff.command("reset-totp")
@click.argument("who")
def staff_reset_totp(who: str) -> None:
    """A new authenticator secret and recovery codes for WHO (id or email address)."""
    from privacy_hub.usecases import staff as staff_cases

    _print_enrolment(_staff_call(staff_cases.reset_second_factor, who, actor=CLI_ACTOR))


@staff.command("code")
@click.argument("secret")
def staff_code(secret: str) -> None:
    """Print the current code for an authenticator SECRET, as an authenticator app would
    (for the demo DPO printed by `init --demo`)."""
    import pyotp

    try:
        click.echo(pyotp.TOTP(secret.strip().replace(" ", "").upper()).now())
    except Exception:  # pyotp raises binascii.Error or ValueError on bad base32
        raise click.ClickException("not an authenticator secret (base32)") from None
