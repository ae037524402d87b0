"""``python -m backfill console``: serve the console on the configured warehouse (what ``make run`` runs).

The warehouse is the one every other command uses (``--warehouse``, ``BACKFILL_WAREHOUSE``, the config
file's ``warehouse``); only when none is set does the console serve the demo, built on first start.
A configured DuckDB file that does not exist is refused, never filled with demo data: a typo must not
put the demo where the team's warehouse was meant to be.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from backfill.cli.common import Context
from backfill.config import DEFAULT_WAREHOUSE
from backfill.errors import BadInput

APP = Path(__file__).resolve().parents[2] / "app.py"
"""The console's entry script, beside the backend package."""

DEFAULT_PORT = 8501
"""Streamlit's own default port."""


def add_console(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "console",
        parents=[common],
        help="serve the console on the configured warehouse (the demo when none is set)",
        description="Serve the web console with streamlit on the warehouse of the settings "
        "(--warehouse, BACKFILL_WAREHOUSE or the config file's warehouse). When none is set, the demo "
        f"warehouse ({DEFAULT_WAREHOUSE}) is served, built first if missing. The port is --port, else "
        f"PORT, else {DEFAULT_PORT}; alert links (console_url) follow it unless console_url is set.",
    )
    parser.add_argument("--port", metavar="N", help=f"port to serve on (default: PORT or {DEFAULT_PORT})")
    parser.set_defaults(handler=_run_console)


def console_port(given: str | None, environ: dict[str, str] | os._Environ[str]) -> int:
    """The port to serve on: the option, else ``PORT``, else Streamlit's default; refused when not a port."""
    raw = given if given is not None else environ.get("PORT") or str(DEFAULT_PORT)
    if not raw.strip().isdigit() or not 1 <= int(raw) <= 65535:
        raise BadInput(f"port {raw!r} is not a number from 1 to 65535")
    return int(raw)


def _run_console(args: argparse.Namespace, ctx: Context) -> int:
    from backfill.demo import ensure_demo
    from backfill.warehouse import adapter_class, parse_url

    port = console_port(args.port, os.environ)
    settings = ctx.settings
    kind, location = parse_url(settings.warehouse)
    if settings.warehouse == DEFAULT_WAREHOUSE:
        if ensure_demo(settings) is not None:
            print(f"built the demo warehouse at {settings.warehouse}", file=ctx.err)
    else:
        adapter_class(kind).check_exists(location)  # a configured file that is missing: refused
    environment = dict(os.environ) | {"BACKFILL_WAREHOUSE": settings.warehouse, "PORT": str(port)}
    if getattr(args, "pipeline", None):
        environment["BACKFILL_PIPELINE"] = args.pipeline
    print(f"serving {settings.warehouse} on http://localhost:{port}", file=ctx.err)
    ctx.err.flush()
    command = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port)]
    os.execvpe(sys.executable, command, environment)  # the server replaces this process (Ctrl-C stops it)
    return 0  # not reached
