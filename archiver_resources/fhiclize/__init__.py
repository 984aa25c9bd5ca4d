"""Legacy fhiclize: run-record ``.txt`` → FHiCL converters, the RunHistory/RunHistory2 generators,
the default ``schema.fcl`` and the preparation of a run's FHiCL file set (docs/formats.md §1, "From text files to FHiCL")."""

from .converters import (
    CONVERTERS,
    fhiclize_boot,
    fhiclize_environment,
    fhiclize_known_boardreaders_list,
    fhiclize_metadata,
    fhiclize_ranks,
    fhiclize_settings,
    fhiclize_setup,
)
from .generators import run_history, run_history2
from .hashes import entity_name, hashes_text
from .prepare import (
    GENERATORS,
    PreparedRun,
    SchemaNotFoundError,
    default_schema_text,
    load_schema_text,
    prepare_run,
)

__all__ = [
    "CONVERTERS",
    "GENERATORS",
    "PreparedRun",
    "SchemaNotFoundError",
    "default_schema_text",
    "entity_name",
    "fhiclize_boot",
    "fhiclize_environment",
    "fhiclize_known_boardreaders_list",
    "fhiclize_metadata",
    "fhiclize_ranks",
    "fhiclize_settings",
    "fhiclize_setup",
    "hashes_text",
    "load_schema_text",
    "prepare_run",
    "run_history",
    "run_history2",
]
