"""`manage.py poll`: one full sweep now, in the foreground, with a progress display: every
cluster of the registry, one after the other, or the one `--cluster` names."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from inventory.services import polling


class Command(BaseCommand):
    help = "Poll the Kubernetes API and every node agent once, now, and print what changed."

    def add_arguments(self, parser):
        parser.add_argument(
            "--workers", type=int, default=8, help="parallel agent polls (threads per process)"
        )
        parser.add_argument(
            "--processes",
            type=int,
            default=1,
            help="sweep processes, each with its share of the nodes (PostgreSQL; SQLite uses one)",
        )
        parser.add_argument("--quiet", action="store_true", help="no progress line")
        parser.add_argument("--cluster", help="sweep this registered cluster only")

    def handle(
        self,
        *args,
        workers: int,
        quiet: bool,
        processes: int = 1,
        cluster: str | None = None,
        **options,
    ):
        if workers < 1 or processes < 1:
            raise CommandError("--workers and --processes must be at least 1")
        interactive = sys.stderr.isatty() and not quiet
        targets = polling.sweep_targets()
        if cluster is not None:
            targets = [target for target in targets if target.name == cluster]
            if not targets:
                raise CommandError(f"no enabled, registered cluster named {cluster!r}")
        failed = False
        for target in targets:
            prefix = f"cluster {target.name}: " if len(targets) > 1 or cluster else ""
            failed |= self._sweep(
                target, prefix, workers=workers, processes=processes, interactive=interactive
            )
        if failed:
            raise SystemExit(1)

    def _sweep(
        self, target, prefix: str, *, workers: int, processes: int, interactive: bool
    ) -> bool:

        def progress(done: int, total: int, _msg: str) -> None:
            if interactive:
                sys.stderr.write(f"\rpolled {done}/{total} nodes")
                sys.stderr.flush()

        # Over several processes the progress line stays silent (the processes poll on their own).
        report = polling.sweep_inline(
            workers=workers, processes=processes, progress=progress, cluster=target
        )
        if interactive:
            sys.stderr.write("\n")
        s = report.stats
        self.stdout.write(
            f"{prefix}sweep done in {report.duration:.2f}s: {report.nodes} nodes, "
            f"{report.agents_ok} agents answered, {report.agents_failed} failed; "
            f"interfaces created={s.created} updated={s.updated} vanished={s.vanished} "
            f"verdicts changed={s.verdicts_changed}; rows written={s.rows_written}"
        )
        if report.cluster_error:
            self.stderr.write(self.style.ERROR(f"{prefix}cluster: {report.cluster_error}"))
            return True
        return False
