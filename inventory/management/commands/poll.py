"""`manage.py poll`: one full sweep now, in the foreground, with a progress display."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand

from inventory.services import polling


class Command(BaseCommand):
    help = "Poll the Kubernetes API and every node agent once, now, and print what changed."

    def add_arguments(self, parser):
        parser.add_argument("--workers", type=int, default=8, help="parallel agent polls")
        parser.add_argument("--quiet", action="store_true", help="no progress line")

    def handle(self, *args, workers: int, quiet: bool, **options):
        interactive = sys.stderr.isatty() and not quiet

        def progress(done: int, total: int, _msg: str) -> None:
            if interactive:
                sys.stderr.write(f"\rpolled {done}/{total} nodes")
                sys.stderr.flush()

        report = polling.sweep_inline(workers=workers, progress=progress)
        if interactive:
            sys.stderr.write("\n")
        s = report.stats
        self.stdout.write(
            f"sweep done in {report.duration:.2f}s: {report.nodes} nodes, "
            f"{report.agents_ok} agents answered, {report.agents_failed} failed; "
            f"interfaces created={s.created} updated={s.updated} vanished={s.vanished} "
            f"verdicts changed={s.verdicts_changed}; rows written={s.rows_written}"
        )
        if report.cluster_error:
            self.stderr.write(self.style.ERROR(f"cluster: {report.cluster_error}"))
            raise SystemExit(1)
