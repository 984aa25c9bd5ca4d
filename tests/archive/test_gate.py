"""The migration gate's list of blocking import checks follows the definitions."""

from archiver_assets.archive.gate import BLOCKING_IMPORT_CHECKS, IMPORT_ASSET, holds


def test_blocking_import_checks_are_those_of_the_definitions():
    from archiver_assets.definitions import build_definitions

    graph = build_definitions().resolve_asset_graph()
    checks = graph.get_check_keys_for_assets({IMPORT_ASSET})
    blocking = {key for key in checks if graph.get(key).blocking}
    assert blocking and blocking == set(BLOCKING_IMPORT_CHECKS)


def test_no_runs_no_queries():
    class NoInstance:
        def __getattr__(self, name):
            raise AssertionError(f"queried the instance ({name})")

    assert holds(NoInstance(), []) == {}
