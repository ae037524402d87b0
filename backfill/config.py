"""Settings: working defaults, overridden by one optional TOML file, then by environment variables.

The file is ``backfill.toml`` in the working directory, or the path in ``BACKFILL_CONFIG``. Every
setting can also be given as ``BACKFILL_<NAME>`` (for example ``BACKFILL_OK_PCT=98``); lists are
comma-separated. Credentials are never part of the settings: BigQuery uses Application Default
Credentials.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backfill.errors import BadInput

DEFAULT_WAREHOUSE = "data/warehouse.duckdb"
"""The embedded DuckDB warehouse, created with demo data on first start."""

DEFAULT_LEDGER = "data/ledger.sqlite"
"""The run ledger (a SQLite file) that records every backfill, work item and operator action."""


@dataclass(frozen=True)
class Settings:
    """Everything the backend can be configured with; every field has a working default."""

    warehouse: str = DEFAULT_WAREHOUSE
    ledger: str = DEFAULT_LEDGER
    analytics_dataset: str = "nba_analytics"
    precompute_dataset: str = "nba_precompute"
    predictions_dataset: str = "nba_predictions"
    bigquery_location: str = "US"
    maximum_bytes_billed: int = 50 * 1024**3
    query_timeout_s: float = 600.0

    ok_pct: float = 99.0
    min_mlfs_coverage_pct: float = 90.0
    min_history_games: int = 3
    feature_version: str = "features_v3"
    model_version: str = "form_v2"
    prediction_systems: tuple[str, ...] = ("weighted_form", "minutes_rate")

    batch_size: int = 31
    max_range_days: int = 400
    max_attempts: int = 4
    retry_delays: tuple[float, ...] = (30.0, 60.0, 120.0)

    operators: tuple[str, ...] = ()
    cache_ttl_s: int = 60

    # The watch (``python -m backfill check``) and its alerts. Secrets are not settings: the webhook
    # URL and the SMTP password come from the environment or .streamlit/secrets.toml (backfill.alerts).
    console_url: str = "http://localhost:8501"
    alert_webhook_format: str = "slack"
    alert_email_to: tuple[str, ...] = ()
    alert_email_from: str = "backfill-console@localhost"
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_starttls: bool = True
    alert_retry_delays: tuple[float, ...] = (5.0, 15.0, 30.0)
    alert_timeout_s: float = 10.0

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (settings are immutable)."""
        return dataclasses.replace(self, **changes)

    @property
    def datasets(self) -> dict[str, str]:
        """Dataset (DuckDB: schema) name of each role."""
        return {
            "analytics": self.analytics_dataset,
            "precompute": self.precompute_dataset,
            "predictions": self.predictions_dataset,
        }


def _coerce(name: str, raw: Any, default: Any) -> Any:
    """Convert a value from the file or the environment to the type of the field's default."""
    try:
        if isinstance(default, tuple):
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            items = [str(item).strip() for item in items if str(item).strip()]
            if default and isinstance(default[0], float):
                return tuple(float(item) for item in items)
            return tuple(items)
        if isinstance(default, bool):
            return str(raw).lower() in {"1", "true", "yes", "on"}
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        return str(raw)
    except (TypeError, ValueError):
        raise BadInput(f"setting {name} has an invalid value: {raw!r}") from None


def load_settings(
    environ: Mapping[str, str] | None = None, config_file: str | Path | None = None
) -> Settings:
    """Read the settings: defaults, then the optional file, then ``BACKFILL_*`` variables."""
    environ = os.environ if environ is None else environ
    defaults = Settings()
    values: dict[str, Any] = {}
    path = Path(config_file or environ.get("BACKFILL_CONFIG") or "backfill.toml")
    if path.is_file():
        try:
            from_file = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise BadInput(f"config file {path} is not valid TOML: {exc}") from None
        values.update(from_file.get("backfill", from_file))
    for f in dataclasses.fields(Settings):
        env_name = f"BACKFILL_{f.name.upper()}"
        if env_name in environ and environ[env_name] != "":
            values[f.name] = environ[env_name]
    unknown = set(values) - {f.name for f in dataclasses.fields(Settings)}
    if unknown:
        raise BadInput(f"unknown setting(s): {', '.join(sorted(unknown))}")
    coerced = {name: _coerce(name, raw, getattr(defaults, name)) for name, raw in values.items()}
    settings = defaults.replace(**coerced)
    _check(settings)
    return settings


def _check(settings: Settings) -> None:
    """Refuse settings that would make every later step wrong."""
    from backfill.validate import check_identifier, check_pct

    for name in ("analytics_dataset", "precompute_dataset", "predictions_dataset"):
        check_identifier(getattr(settings, name), name)
    for system in settings.prediction_systems:
        check_identifier(system, "prediction system")
    check_pct(settings.ok_pct, "ok_pct")
    check_pct(settings.min_mlfs_coverage_pct, "min_mlfs_coverage_pct")
    if settings.min_history_games < 0:
        raise BadInput("min_history_games must be 0 or more")
    if settings.batch_size < 1:
        raise BadInput("batch_size must be 1 or more")
    if settings.max_attempts < 1:
        raise BadInput("max_attempts must be 1 or more")
    if any(delay < 0 for delay in settings.retry_delays):
        raise BadInput("retry_delays must not be negative")


__all__ = ["DEFAULT_LEDGER", "DEFAULT_WAREHOUSE", "Settings", "load_settings"]
