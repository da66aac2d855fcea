"""`privacy-hub retention ...`: storage limitation on demand (the workers also run it)."""

from __future__ import annotations

import click

from privacy_hub.cli import _open_hub


@click.group()
def retention() -> None:
    """Storage limitation: delete what has been kept long enough."""


@retention.command("inactive")
@click.option("--dry-run", is_flag=True, help="Only count who would be warned or erased.")
def retention_inactive(dry_run: bool) -> None:
    """R-RET-02: warn customers inactive for PRIVACY_HUB_INACTIVITY_DAYS less
    PRIVACY_HUB_INACTIVITY_NOTICE_DAYS, erase those whose warning ran out."""
    from audit.clock import utcnow
    from privacy_hub.usecases.inactivity import run_inactivity

    hub = _open_hub()
    try:
        counts = run_inactivity(hub, utcnow(), dry_run=dry_run)
    finally:
        hub.close()
    verb = "would warn" if dry_run else "warned"
    click.echo(f"{verb} {counts.warned}, {'would erase' if dry_run else 'erased'} "
               f"{counts.erased}" + ("" if dry_run else f", failed {counts.failed}"))
    if counts.failed:
        raise SystemExit(1)
