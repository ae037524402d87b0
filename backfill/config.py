"""Settings: working defaults, overridden by one optional TOML file, then by environment variables.

The file is ``backfill.toml`` in the working directory, or the path in ``BACKFILL_CONFIG``. Every
setting can also be given as ``BACKFILL_<NAME>`` (for example ``BACKFILL_OK_PCT=98``); lists are
comma-separated. Credentials are never part of the settings: BigQuery uses Application Default
Credentials.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backfill.errors import BadInput
from backfill.pipeline import Pipeline, builtin_pipeline, load_pipeline

DEFAULT_WAREHOUSE = "data/warehouse.duckdb"
"""The embedded DuckDB warehouse, created with demo data on first start."""

DEMO_DATASETS = {
    "analytics": "nba_analytics",
    "precompute": "nba_precompute",
    "predictions": "nba_predictions",
}
"""The demo's dataset of each role, as the built-in pipeline file names them."""

DEFAULT_LEDGER = "data/ledger.sqlite"
"""The run ledger (a SQLite file) that records every backfill, work item and operator action."""

MAX_ALERT_DELAY_S = 300.0
"""The longest wait before an alert's next delivery attempt: a check must end, the next one retries."""

OPERATOR_CLAIMS = ("email", "sub")
"""Sign-in claims that may name an operator: the e-mail address, or the provider's subject
(its stable user id, for providers whose e-mail addresses can change or go unverified)."""


@dataclass(frozen=True)
class Settings:
    """Everything the backend can be configured with; every field has a working default."""

    warehouse: str = DEFAULT_WAREHOUSE
    ledger: str = DEFAULT_LEDGER
    analytics_dataset: str = "nba_analytics"
    precompute_dataset: str = "nba_precompute"
    predictions_dataset: str = "nba_predictions"
    # BigQuery's own: also read from a [bigquery] section of the file (location = ...).
    bigquery_location: str = field(default="", metadata={"section": ("bigquery", "location")})
    """Empty: the analytics dataset's own location."""
    maximum_bytes_billed: int = field(
        default=50 * 1024**3, metadata={"section": ("bigquery", "maximum_bytes_billed")}
    )
    query_timeout_s: float = field(default=600.0, metadata={"section": ("bigquery", "query_timeout_s")})

    ok_pct: float = 99.0

    batch_size: int | None = None
    """Dates per batch of every run; unset (None): each run's is sized by its work (backfill.batching)."""
    max_range_days: int = 400
    release_every_s: float = 10.0
    """A run on an embedded warehouse file lets a reader that marks it waits (the console, the CLI) in
    after its current window; it frees the file this often as well, between windows, for readers that
    do not mark it (DuckDB's own CLI, a notebook). Freeing the file checkpoints it, about a quarter of
    a second on 20 seasons, so it is not done after every window."""
    max_attempts: int = 4
    retry_delays: tuple[float, ...] = (30.0, 60.0, 120.0)

    operators: tuple[str, ...] = ()
    operator_claim: str = "email"
    cache_ttl_s: int = 60
    cache_dir: str = ""
    """Where summaries kept between processes live (coverage snapshots, translated SQL): empty means
    ``cache/`` beside a SQLite ledger file (``data/cache`` by default) when that folder exists;
    ``off`` keeps none."""

    # The watch (``python -m backfill check``) and its alerts. Secrets are not settings: the webhook
    # URL and the SMTP password come from the environment or .streamlit/secrets.toml (backfill.alerts).
    console_url: str = "http://localhost:8501"
    """Unset, it follows the console's port: ``http://localhost:$PORT`` when ``PORT`` is set."""
    alert_webhook_format: str = "slack"
    alert_email_to: tuple[str, ...] = ()
    alert_email_from: str = "backfill-console@localhost"
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_starttls: bool = True
    alert_retry_delays: tuple[float, ...] = (5.0, 15.0, 30.0)
    alert_timeout_s: float = 10.0

    pipeline: Pipeline = field(default_factory=builtin_pipeline, compare=False)
    """The stages and their rules (:mod:`backfill.pipeline`); not a plain setting, read from its file."""

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (settings are immutable)."""
        return dataclasses.replace(self, **changes)

    @property
    def datasets(self) -> dict[str, str]:
        """Dataset (DuckDB: schema) name of each role of the demo's tables."""
        return {
            "analytics": self.analytics_dataset,
            "precompute": self.precompute_dataset,
            "predictions": self.predictions_dataset,
        }

    def cache_path(self, kind: str) -> Path | None:
        """The directory of one kind of cache (``coverage``, ``sql``), or None when caching is off."""
        if self.cache_dir.strip().lower() == "off":
            return None
        if self.cache_dir:
            return Path(self.cache_dir) / kind
        # Beside the ledger's file; a ledger in a database server has no folder, so the default one.
        # Only in a folder that exists: a mistyped ledger path must not have its folder created.
        folder = Path(DEFAULT_LEDGER if "://" in self.ledger else self.ledger).parent
        return folder / "cache" / kind if folder.is_dir() else None

    def dataset_name(self, dataset: str) -> str:
        """The dataset a pipeline's dataset name stands for: the three dataset settings rename the
        demo's datasets (a scratch or test copy of the warehouse); any other name is used as it is."""
        renames = {DEMO_DATASETS[role]: name for role, name in self.datasets.items()}
        return renames.get(dataset, dataset)


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(value)
    return value


def _coerce(name: str, raw: Any, default: Any) -> Any:
    """Convert a value from the file or the environment to the type of the field's default."""
    try:
        if name == "batch_size":  # the one optional number: unset means sized by the work
            return None if str(raw).strip().lower() in {"", "auto", "none"} else int(raw)
        if isinstance(default, tuple):
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            items = [str(item).strip() for item in items if str(item).strip()]
            if default and isinstance(default[0], float):
                return tuple(_finite(float(item)) for item in items)
            return tuple(items)
        if isinstance(default, bool):
            return str(raw).lower() in {"1", "true", "yes", "on"}
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return _finite(float(raw))
        return str(raw)
    except (TypeError, ValueError):
        raise BadInput(f"setting {name} has an invalid value: {raw!r}") from None


_PLAIN = tuple(f.name for f in dataclasses.fields(Settings) if f.name != "pipeline")
"""Settings read from the config file and ``BACKFILL_*`` variables (the pipeline has its own file)."""

OTHER_VARIABLES = frozenset(
    {
        # Read by the product beside the settings.
        "BACKFILL_CONFIG",
        "BACKFILL_PIPELINE",
        "BACKFILL_SECRETS_FILE",
        "BACKFILL_ALERT_WEBHOOK_URL",
        "BACKFILL_SMTP_PASSWORD",
        "BACKFILL_USER",
        "BACKFILL_CRASH_AT",
        # Set by the product for a command job (a job may run the CLI itself).
        "BACKFILL_DATES",
        "BACKFILL_RUN_ID",
        "BACKFILL_STAGE",
        "BACKFILL_MIN_UPSTREAM_COVERAGE_PCT",
        "BACKFILL_SKIP_GATES",
        # Read by the tests and the benchmark.
        "BACKFILL_CHROMIUM",
        "BACKFILL_TEST_PG_BIN",
    }
)
"""``BACKFILL_*`` variables that are not settings but known: everything else is a typo."""

OTHER_PREFIXES = ("BACKFILL_TEST_", "BACKFILL_BENCH_")
"""Families of variables the test suite and the benchmark may add for themselves."""

LEDGER_SCHEMES = frozenset({"postgresql", "postgres", "postgresql+psycopg"})
"""Schemes of a PostgreSQL ledger (compared case-insensitively, as URL schemes are)."""


def ledger_location(location: str) -> str:
    """A ledger location as the ledger reads it: a file path, or a PostgreSQL URL with its scheme
    in lower case; ``sqlite:///PATH`` is the path. Any other scheme is BadInput: a mistyped URL must
    not become a local file that shares no leases with the team."""
    text = str(location).strip()
    scheme, separator, rest = text.partition("://")
    if not text:
        raise BadInput("ledger is empty: a file path, sqlite:///PATH or postgresql://USER@HOST:PORT/DB")
    if not separator:
        return text
    kind = scheme.lower()
    if kind in LEDGER_SCHEMES:
        return f"{kind}://{rest}"
    if kind == "sqlite" and rest.startswith("/") and rest.strip("/"):
        return rest[1:]  # SQLAlchemy's form: sqlite:///relative.db, sqlite:////absolute.db
    raise BadInput(
        f"ledger {text!r} is not a file path, sqlite:///PATH or postgresql://USER@HOST:PORT/DB "
        f"(scheme {scheme!r} is not known)"
    )


def _unknown_variables(environ: Mapping[str, str]) -> None:
    """Refuse a ``BACKFILL_*`` variable that names no setting, naming the nearest one."""
    known = {f"BACKFILL_{name.upper()}" for name in _PLAIN} | OTHER_VARIABLES
    for name in sorted(environ):
        if not name.startswith("BACKFILL_") or name in known or name.startswith(OTHER_PREFIXES):
            continue
        raise BadInput(f"unknown environment variable {name}{_nearest(name, known)}")


def _nearest(name: str, known: Iterable[str]) -> str:
    """ "; did you mean X?" for the known name nearest a mistyped one, or nothing."""
    nearest = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f"; did you mean {nearest[0]}?" if nearest else ""


def _flatten(table: Mapping[str, Any]) -> dict[str, Any]:
    """The file's settings as field names: a section's keys (``[bigquery] location``) become the
    fields that declare them (``bigquery_location``); the flat names keep working too."""
    sections = {
        f.metadata["section"]: f.name for f in dataclasses.fields(Settings) if "section" in f.metadata
    }
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, Mapping) and any(section == key for section, _ in sections):
            for name, item in value.items():
                if (key, name) not in sections:
                    raise BadInput(f"unknown setting [{key}] {name}")
                flat[sections[(key, name)]] = item
        else:
            flat[key] = value
    return flat


def load_settings(
    environ: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
    pipeline: str | Path | None = None,
) -> Settings:
    """Read the settings: defaults, then the optional file, then ``BACKFILL_*`` variables; and the
    pipeline from ``pipeline`` (a path), ``BACKFILL_PIPELINE``, ``./pipeline.toml`` or the built-in one."""
    environ = os.environ if environ is None else environ
    _unknown_variables(environ)
    defaults = Settings()
    values: dict[str, Any] = {}
    named = config_file or environ.get("BACKFILL_CONFIG")
    path = Path(named or "backfill.toml")
    if named and not path.exists():
        raise BadInput(f"config file {path} (BACKFILL_CONFIG) does not exist")
    if path.exists() and not path.is_dir():  # a file, or /dev/null for "no settings file"
        try:
            from_file = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise BadInput(f"config file {path} is not valid TOML: {exc}") from None
        values.update(_flatten(from_file.get("backfill", from_file)))
    for name in _PLAIN:
        env_name = f"BACKFILL_{name.upper()}"
        if env_name in environ and environ[env_name] != "":
            values[name] = environ[env_name]
    if "console_url" not in values and environ.get("PORT", "").strip().isdigit():
        values["console_url"] = f"http://localhost:{environ['PORT'].strip()}"  # the port make run serves on
    unknown = set(values) - set(_PLAIN)
    if unknown:
        raise BadInput(
            f"unknown setting(s): {', '.join(sorted(unknown))}{_nearest(sorted(unknown)[0], _PLAIN)}"
        )
    coerced = {name: _coerce(name, raw, getattr(defaults, name)) for name, raw in values.items()}
    settings = _check(defaults.replace(**coerced))
    return settings.replace(pipeline=load_pipeline(pipeline, environ))


def _check(settings: Settings) -> Settings:
    """Refuse settings that would make every later step wrong; returns them with the ledger's
    location in its one form."""
    from backfill.validate import MAX_DELAY_S, check_delays, check_identifier, check_pct
    from backfill.warehouse import scheme

    scheme(settings.warehouse)  # an unknown scheme is refused before anything opens or creates a file

    for name in ("analytics_dataset", "precompute_dataset", "predictions_dataset"):
        check_identifier(getattr(settings, name), name)
    check_pct(settings.ok_pct, "ok_pct")
    if settings.batch_size is not None and settings.batch_size < 1:
        raise BadInput("batch_size must be 1 or more")
    if not 0 <= settings.release_every_s <= 3600:
        raise BadInput("release_every_s must be a number of seconds from 0 to 3600")
    if settings.max_attempts < 1:
        raise BadInput("max_attempts must be 1 or more")
    check_delays(settings.retry_delays, "retry_delays", MAX_DELAY_S)
    check_delays(settings.alert_retry_delays, "alert_retry_delays", MAX_ALERT_DELAY_S)
    if settings.operator_claim not in OPERATOR_CLAIMS:
        raise BadInput(
            f"operator_claim must be one of {', '.join(OPERATOR_CLAIMS)}, not {settings.operator_claim!r}"
        )
    return settings.replace(ledger=ledger_location(settings.ledger))


__all__ = [
    "DEFAULT_LEDGER",
    "DEFAULT_WAREHOUSE",
    "OPERATOR_CLAIMS",
    "Settings",
    "ledger_location",
    "load_settings",
]
