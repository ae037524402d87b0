"""Backend of the prediction-coverage console: warehouses, coverage, backfills, reports.

Plain Python with no Streamlit import, so the CLI, the console and the tests share one backend.
"""

__version__ = "0.1.0"
