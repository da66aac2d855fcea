"""`privacy-hub retention ...`: the retention table and the retention pass (R-RET-01), and
the inactivity pass (R-RET-02)."""

from __future__ import annotations

import click

from audit.clock import utcnow
from privacy_hub.cli import _open_hub
from privacy_hub.cli_progress import Meter, Tracker, progress


class PassMeters:
    """The retention pass's progress (privacy_hub.usecases.retention.PassProgress): one
    meter for the whole pass, with the time left from the counts made before it, and one
    for each store as it starts deleting."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.expected: dict[str, int] = {}
        self.done: dict[str, int] = {}
        self.stores: dict[str, Meter] = {}
        self.whole: Meter | None = None

    def expect(self, counts: dict[str, int]) -> None:
        self.expected = counts
        self.whole = self.tracker.task("retention pass", total=sum(counts.values()))

    def _store(self, store: str) -> Meter:
        if store not in self.stores:
            self.stores[store] = self.tracker.task(f"retention {store}",
                                                   total=self.expected.get(store))
        return self.stores[store]

    def deleted(self, store: str, rows: int) -> None:
        self.done[store] = self.done.get(store, 0) + rows
        self._store(store).update(self.done[store])
        if self.whole is not None:
            self.whole.update(sum(self.done.values()))

    def finished(self, store: str, count: int) -> None:
        if count or store in self.stores:
            self.done[store] = count
            meter = self._store(store)
            meter.update(count)
            meter.finish()
            if self.whole is not None:
                self.whole.update(sum(self.done.values()))


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
        if dry_run:  # counts only: nothing to watch
            counts = run_retention(hub, utcnow(), dry_run=True)
        else:
            with progress() as tracker:
                counts = run_retention(hub, utcnow(), progress=PassMeters(tracker))
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
