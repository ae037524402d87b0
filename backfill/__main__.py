"""`python -m backfill ...`: the command-line interface."""

import sys

from backfill.cli import main

sys.exit(main())
