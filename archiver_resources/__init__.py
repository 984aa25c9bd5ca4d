"""The archiver's domain core and its boundaries (artdaqDB, UconDB, notifications, metrics).

Everything below this package works without Dagster except ``archiver_resources.dagster``,
which wraps the plain classes as Dagster ``ConfigurableResource``s.
"""
