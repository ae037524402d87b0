"""``python -m backfill doctor``: check the warehouse without writing (see :mod:`backfill.doctor`)."""

from __future__ import annotations

import argparse
from typing import Any

from backfill.cli.common import Context


def add_doctor(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "doctor",
        parents=[common],
        help="check the warehouse without writing: credentials, location, datasets, tables, permissions",
        description="Checks, one line each with what to fix: the connection and credentials; on "
        "BigQuery the datasets, their location, partitioning and clustering, and permissions by dry "
        "runs (free); every table's columns against the schema. Nothing is written. Exits 1 when a "
        "check fails (a missing table or required column), 0 otherwise (warnings allowed).",
    )
    parser.set_defaults(handler=_run_doctor)


def _run_doctor(args: argparse.Namespace, ctx: Context) -> int:
    from backfill.access import local_user
    from backfill.cost_labels import job_labels
    from backfill.doctor import doctor, format_check
    from backfill.warehouse import connect

    warehouse = connect(ctx.settings)
    warehouse.base_labels = job_labels("doctor", local_user())
    try:
        checks, code = doctor(ctx.settings, warehouse)
    finally:
        warehouse.close()
    for check in checks:
        print(format_check(check), file=ctx.out)
    failed = sum(check.status == "FAIL" for check in checks)
    print(f"{failed} check(s) failed" if failed else "ready: no check failed", file=ctx.out)
    return code
