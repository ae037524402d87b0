#!/usr/bin/env bash
# Create .venv-bqemu: the local BigQuery emulator that tests/bigquery runs the backend against.
#
# The emulator lives in its own virtual environment because it needs duckdb 1.5.5 while the app
# pins duckdb 2.x, and because bqemulator registers a pytest plugin that must not load in the app's
# test run. At start it runs DuckDB's `INSTALL spatial` (required) and `INSTALL avro` (best effort),
# which would download the extensions; the PyPI wheels duckdb-extension-{spatial,avro} carry those
# files, and copying them into DuckDB's extension folder lets the emulator start offline without
# trying the network. numpy is needed by the emulator's built-in Python UDFs, though not declared.
# Safe to run again: it only does what is missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BQEMU_VENV:-$ROOT/.venv-bqemu}"
PYTHON="${PYTHON:-python3}"

BQEMULATOR_VERSION="1.4.0"
DUCKDB_VERSION="1.5.5"
EXTENSIONS=(spatial avro)
PACKAGES=("bqemulator==$BQEMULATOR_VERSION" "duckdb==$DUCKDB_VERSION" "numpy==2.4.6")
for extension in "${EXTENSIONS[@]}"; do
  PACKAGES+=("duckdb-extension-$extension==$DUCKDB_VERSION")
done
# The stamp names the exact package list, so changing a pin reinstalls.
STAMP="$VENV/.installed-$(printf '%s\n' "${PACKAGES[@]}" | sha256sum | cut -c1-16)"

if [[ ! -f "$STAMP" ]]; then
  [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PACKAGES[@]}"
  touch "$STAMP"
fi

# DuckDB looks for extensions in ~/.duckdb/extensions/v<version>/<platform>/.
PLATFORM="$("$VENV/bin/python" -c 'import duckdb; print(duckdb.execute("PRAGMA platform").fetchone()[0])')"
TARGET="$HOME/.duckdb/extensions/v$DUCKDB_VERSION/$PLATFORM"
for extension in "${EXTENSIONS[@]}"; do
  SOURCE="$("$VENV/bin/python" - "$extension" <<'PY'
import importlib.metadata as md
import sys

name = sys.argv[1]
files = md.distribution(f"duckdb-extension-{name}").files or []
paths = [f.locate() for f in files if str(f).endswith(f"{name}.duckdb_extension")]
if not paths:
    raise SystemExit(f"duckdb-extension-{name} ships no {name}.duckdb_extension")
print(paths[0])
PY
)"
  if ! cmp -s "$SOURCE" "$TARGET/$extension.duckdb_extension"; then
    mkdir -p "$TARGET"
    cp "$SOURCE" "$TARGET/$extension.duckdb_extension"
  fi
done

echo "bqemulator $BQEMULATOR_VERSION (duckdb $DUCKDB_VERSION) ready in $VENV"
