"""``python -m backfill smoke``: a demo in scratch datasets, a backfill and a stale-row deletion in
their production form, checked, then dropped (see :mod:`backfill.smoke`)."""

from __future__ import annotations

import argparse
from typing import Any

from backfill.cli.common import EXIT_FAILED, EXIT_OK, Context
from backfill.errors import BadInput


def add_smoke(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "smoke",
        parents=[common],
        help="try a backfill and a stale-row deletion in scratch datasets of the warehouse, then drop them",
        description="In the configured BigQuery project, create scratch datasets named like the "
        "configured ones plus --scratch-suffix (labelled backfill_smoke=true), build a one-season demo "
        "there, backfill one date with the production replace scripts, delete the month's stale rows "
        "with the production deletion script, check coverage, stale rows and row counts, and drop the "
        "datasets. Datasets it did not create are never touched (exit 2). One line per step, OK or "
        "FAIL with what to fix; exit 0 when every step is OK, 1 otherwise.",
    )
    parser.add_argument(
        "--scratch-suffix",
        required=True,
        metavar="SUFFIX",
        help="appended to each dataset name for the scratch datasets, e.g. _scratch",
    )
    parser.add_argument(
        "--keep", action="store_true", help="leave the scratch datasets in place (drop them by a later smoke)"
    )
    parser.set_defaults(handler=_run_smoke)


def _run_smoke(args: argparse.Namespace, ctx: Context) -> int:
    from backfill.access import local_user
    from backfill.cost_labels import job_labels
    from backfill.smoke import claim_datasets, run_smoke, scratch_datasets, scratch_settings
    from backfill.warehouse import adapter_class, connect, parse_url

    settings = scratch_settings(ctx.settings, args.scratch_suffix)
    kind, _ = parse_url(settings.warehouse)
    if not adapter_class(kind).SUPPORTS_SCRATCH_DATASETS:
        raise BadInput(
            "smoke tries scratch datasets of a BigQuery project (--warehouse bigquery://PROJECT); "
            "a local warehouse is tried with: python -m backfill demo"
        )
    production = connect(ctx.settings)
    try:
        # Scratch datasets where the production ones are, so jobs run where a real run's do.
        location = settings.bigquery_location or getattr(production, "location", None) or ""
    finally:
        production.close()
    warehouse = connect(settings.replace(bigquery_location=location))
    warehouse.base_labels = job_labels("smoke", local_user())
    failed = False
    try:
        claim_datasets(warehouse, scratch_datasets(settings))  # refuses before anything is written
        print(f"smoke on {warehouse.describe()}", file=ctx.out, flush=True)
        for step in run_smoke(warehouse, warehouse.settings, keep=args.keep):
            failed |= not step.ok
            print(step.line(), file=ctx.out, flush=True)
    finally:
        warehouse.close()
    print("smoke failed: see the FAIL lines" if failed else "smoke passed: every step OK", file=ctx.out)
    return EXIT_FAILED if failed else EXIT_OK
