"""`privacy-hub retention ...`: the retention table and the retention pass (R-RET-01), and
the inactivity pass (R-RET-02)."""

from __future__ import annotations

import click

from audit.clock import utcnow
from privacy_hub.cli import _open_hub


@click.group()
def retention() -> None:
    """Storage limitation: how long each store keeps data, and the pass that deletes it."""


@retention.command("run")
@click.option("--dry-run", is_flag=True,
              help="Count what has run out in each store; delete nothing, audit nothing.")
def retention_run(dry_run: bool) -> None:
    """Run a retention pass now (the workers run one daily): one line per store,
    `<store>: <count>`. Audited with the counts (a dry run is not: it changes nothing)."""
    from privacy_hub.usecases.retention import run_retention

    hub = _open_hub()
    try:
        counts = run_retention(hub, utcnow(), dry_run=dry_run)
    finally:
        hub.close()
    verb = "would delete" if dry_run else "deleted"
    for store, count in counts.items():
        click.echo(f"{store}: {count}")
    click.echo(f"{verb} {sum(counts.values())} in all" + (" (dry run)" if dry_run else ""))


@retention.command("policies")
def retention_policies() -> None:
    """Every store with its period, what happens at its end and the variable that sets it,
    tab-separated (GET /api/v1/retention-policies gives the reasons too)."""
    from privacy_hub.usecases.retention import retention_policies as listed

    hub = _open_hub()
    try:
        with hub.read_sessions() as session:
            items = listed(hub, session)
    finally:
        hub.close()
    for p in items:
        days = "-" if p["days"] is None else f"{p['days']} days"
        click.echo(f"{p['id']}\t{days}\t{p['action']}\t{p['configured_by'] or '-'}")


@retention.command("inactive")
@click.option("--dry-run", is_flag=True, help="Only count who would be warned or erased.")
def retention_inactive(dry_run: bool) -> None:
    """R-RET-02: warn customers inactive for PRIVACY_HUB_INACTIVITY_DAYS less
    PRIVACY_HUB_INACTIVITY_NOTICE_DAYS, erase those whose warning ran out (the workers
    run it too)."""
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
