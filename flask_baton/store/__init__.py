"""Every SQL statement flask_baton sends, grouped by concern.

``reads``: the read models (workflows, steps, status, pages, the loaders a
transition calls in its own transaction). ``usage``: model-call usage rows,
their totals and debug captures. ``feed``: the database event feed.
"""
