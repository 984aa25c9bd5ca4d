"""The artdaq_database document record built from FHiCL text, FHiCL regenerated from
a record, and data-tree equivalence of two FHiCL texts."""

from datetime import datetime

from archiver_resources.fhicl.parser import parse_fhicl
from archiver_resources.fhicl.tables import same_tree
from archiver_resources.fhicl.writer import FhiclRecordError, write_fhicl

def format_timestamp(moment: datetime | None = None) -> str:
    """An artdaq_database timestamp: local time (naive datetimes count as local) with the real
    milliseconds, truncated, as the C++ writes them: ``2024-10-15T09:02:11.042-0500``.

    (The C++ formats ``%FT%T.000%z`` and overwrites the ``000`` with the milliseconds of the same
    clock reading; only its fake-time test mode leaves them at a fixed value.)"""
    local = (moment or datetime.now()).astimezone()
    return f"{local:%Y-%m-%dT%H:%M:%S}.{local.microsecond // 1000:03d}{local:%z}"


def fhicl_to_record(text: str, name: str, *, timestamp: datetime | str | None = None,
                    extensions: set | None = None) -> dict:
    """The record artdaq_database's ``fhicl_to_json(text, name)`` produces.

    ``timestamp`` (a datetime, or an already formatted string) makes ``origin.timestamp``
    deterministic; by default it is the current local time. When ``extensions`` (a set) is given,
    the names of the extensions beyond the C++ grammar that the text needed are added to it
    (see ``parser``). Raises ``FhiclSyntaxError``.
    """
    parsed = parse_fhicl(text, name)
    if extensions is not None:
        extensions.update(parsed.extensions)
    if isinstance(timestamp, str):
        stamp = timestamp
    else:
        stamp = format_timestamp(timestamp)
    return {
        "document": {"data": parsed.data, "metadata": parsed.metadata},
        "comments": parsed.comments,
        "origin": {"format": "fhicl", "name": name, "source": "fhicl_to_json",
                   "timestamp": stamp},
        "version": "notprovided",
        "entities": [],
        "configurations": [],
    }


def record_to_fhicl(record: dict) -> str:
    """Regenerated FHiCL text of a record (or of its ``document``), deterministic for equal trees.

    Raises ``FhiclRecordError`` when the record has no ``document.data`` object or a key that
    is no FHiCL name (the text would not parse again).
    """
    if not isinstance(record, dict):
        raise FhiclRecordError(f"expected a JSON object, got {type(record).__name__}")
    document = record.get("document", record)
    name = ""
    origin = record.get("origin")
    if isinstance(origin, dict) and isinstance(origin.get("name"), str):
        name = origin["name"]
    if not isinstance(document, dict) or not isinstance(document.get("data"), dict):
        raise FhiclRecordError("no document.data object", name=name)
    data = document["data"]
    for part in ("prolog", "main"):
        if part in data and not isinstance(data[part], dict):
            raise FhiclRecordError(f"document.data.{part} is not an object", name=name)
    metadata = document.get("metadata")
    try:
        return write_fhicl(data, metadata if isinstance(metadata, dict) else None)
    except FhiclRecordError as error:
        if name and not error.name:
            raise FhiclRecordError(error.reason, name=name) from None
        raise


def fhicl_equivalent(a_text: str, b_text: str, *, a_name: str = "<a>",
                     b_name: str = "<b>") -> bool:
    """True when both texts parse to the same data tree (comments, layout, quoting ignored;
    repeated keys compared in order)."""
    return same_tree(parse_fhicl(a_text, a_name).data, parse_fhicl(b_text, b_name).data)
