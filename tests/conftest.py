"""Session-wide test hygiene shared by every test package."""

import pytest


@pytest.fixture(autouse=True)
def _no_leaked_dagster_defs_state_storage():
    """Give every test a clean Dagster "current defs-state storage".

    Dagster keeps it in a context variable that some code paths set without resetting (an
    instance created by an earlier test, then garbage-collected, leaves a dead weakref behind);
    `Definitions.validate_loadable` then fails with "undefined DagsterInstance weakref" depending
    on test order. Reset it around each test.
    """
    from dagster._core.storage.defs_state.base import _current_storage

    token = _current_storage.set(None)
    try:
        yield
    finally:
        try:
            _current_storage.reset(token)
        except ValueError:
            _current_storage.set(None)
