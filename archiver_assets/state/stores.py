"""The three stores of one configuration (run records on disk, artdaqDB, UconDB) as the command
line, reconcile and the plan read them: listings only, opened through the same Dagster
resources the assets use, so there is one place that knows how to open a store."""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager, Union

from archiver_resources.config import ArchiverConfig
from archiver_assets.resources import (
    ArchiverConfigResource, ArtdaqDBResource, RunRecordsResource, UconDBResource,
)
from archiver_resources.runrecords import RunListing, list_runs


@dataclass(frozen=True)
class Stores:
    """Openers of artdaqDB and UconDB plus the run-records directory of one configuration."""

    config: ArchiverConfig
    open_artdaqdb: Callable[[], ContextManager]
    open_ucondb: Callable[[], ContextManager]
    run_records: RunRecordsResource

    @classmethod
    def from_resources(cls, settings: ArchiverConfigResource, run_records: RunRecordsResource,
                       artdaqdb: ArtdaqDBResource, ucondb: UconDBResource) -> "Stores":
        return cls(config=settings.get(), open_artdaqdb=artdaqdb.open,
                   open_ucondb=ucondb.client, run_records=run_records)

    @classmethod
    def from_config_path(cls, config_path: Union[str, Path]) -> "Stores":
        settings = ArchiverConfigResource(config_path=str(config_path))
        return cls.from_resources(settings, RunRecordsResource(settings=settings),
                                  ArtdaqDBResource(settings=settings),
                                  UconDBResource(settings=settings))

    @property
    def run_records_dir(self) -> Path:
        return Path(self.config.source_files.run_records_dir)

    def list_filesystem(self) -> RunListing:
        """Run directories on disk (raises RunRecordError when the directory cannot be listed)."""
        return list_runs(self.run_records_dir)

    def list_artdaqdb(self) -> dict:
        """``{run: "<run>/<config>"}`` from artdaqDB's index (no document reads)."""
        with self.open_artdaqdb() as store:
            return dict(store.archived_runs())

    def list_ucondb(self) -> set:
        """Runs with a version keyed by their run number in the configured UconDB object."""
        with self.open_ucondb() as client:
            return set(client.existing_runs())

    def describe(self) -> dict:
        """The locations the status report prints (passwords are masked by the report)."""
        section = self.config.ucon_db
        return {"filesystem": str(self.run_records_dir),
                "artdaqdb": self.config.artdaq_db.database_uri,
                "ucondb": section.server_url, "ucondb_folder": section.folder_name,
                "ucondb_object": section.object_name}


def as_stores(config: Union[Stores, ArchiverConfig, str, Path]) -> Stores:
    """A ``Stores`` from itself, a loaded configuration (which must carry its path) or a path."""
    if isinstance(config, Stores):
        return config
    if isinstance(config, ArchiverConfig):
        if not config.path:
            raise ValueError("the configuration has no file path; pass Stores instead")
        return Stores.from_config_path(config.path)
    return Stores.from_config_path(config)
