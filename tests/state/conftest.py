"""Fixtures for the state tests: the command-line environment (re-exported) and a way to fill
the stores directly through the archiving core (no Dagster), as a legacy deployment or a lost
DAGSTER_HOME leaves them."""

from tests.cli.conftest import cli_env, fast_root, ucondb_server  # noqa: F401 (fixtures)

from archiver_assets.state.stores import Stores
from archiver_resources.archiving import import_run, migrate_run


def archive_directly(env, runs, *, migrate=True) -> None:
    """Import (and migrate) ``runs`` with the archiving core, bypassing Dagster."""
    stores = Stores.from_config_path(env.config_path)
    settings = stores.run_records.import_settings()
    with stores.open_artdaqdb() as artdaqdb, stores.open_ucondb() as ucondb:
        for run in runs:
            import_run(run, env.run_records / str(run), artdaqdb, settings)
            if migrate:
                migrate_run(run, artdaqdb, ucondb)
