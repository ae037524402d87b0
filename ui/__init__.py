"""Console helpers: cached data loaders, Altair chart builders, formatting and the date selection.

Pages stay thin and call these; ``ui.charts``, ``ui.format`` and ``ui.selection`` do not import
Streamlit, so they can be unit-tested without a running app.
"""
