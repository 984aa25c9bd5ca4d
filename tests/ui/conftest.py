"""Fixtures for the UI test: the pipeline fixtures (`archive_env`, `ucondb_server`) of
tests/pipeline, re-exported."""

from tests.pipeline.conftest import archive_env, ucondb_server  # noqa: F401
