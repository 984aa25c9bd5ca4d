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


def remove_tree(top) -> None:
    """``shutil.rmtree`` without recursion (it recurses once per directory level)."""
    import os

    stack, directories = [str(top)], []
    while stack:
        directory = stack.pop()
        directories.append(directory)
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
            else:
                os.unlink(entry.path)
    for directory in reversed(directories):
        try:
            os.rmdir(directory)
        except FileNotFoundError:
            pass


@pytest.fixture
def nested_dirs():
    """``nest(base, depth, name="d")``: directories nested ``depth`` levels below ``base`` (made
    one by one: os.makedirs recurses) with a ``deep.fcl`` at the bottom; returns the bottom.

    They are removed again without recursion at teardown: pytest's clean-up of old temporary
    directories (shutil.rmtree) would hit RecursionError on them in a later session, in any
    project sharing /tmp/pytest-of-<user>. Request this fixture last, so it is torn down first.
    """
    from pathlib import Path

    made = []

    def nest(base, depth: int, name: str = "d") -> Path:
        path = Path(base)
        made.append(path / name)
        for _ in range(depth):
            path = path / name
            path.mkdir()
        (path / "deep.fcl").write_text("a: 1\n")
        return path

    yield nest
    for top in made:
        remove_tree(top)
