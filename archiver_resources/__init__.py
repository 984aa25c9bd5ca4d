"""The archiver's domain core and its boundaries (artdaqDB, UconDB, notifications, metrics).

Nothing in this package imports Dagster (tests/core/test_layering.py holds it to that): the
Dagster ``ConfigurableResource``s that wrap these plain classes live in
``archiver_assets/resources.py``.
"""
