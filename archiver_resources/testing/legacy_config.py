"""A legacy-format ``config.yaml`` for throw-away stores (tests and benchmarks): a filesystemdb or
MongoDB artdaqDB, a (local) UconDB server and a run-records directory, with ``schema.fcl`` written
next to it. The UconDB password comes from an environment variable, as at a site."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Union

from archiver_resources.fhiclize import default_schema_text

Keys = Union[str, Mapping[str, Any]]


def _lines(keys: Keys) -> str:
    """Raw YAML lines of a section: a string as it is, a mapping as ``  key: value`` (values
    written as given, so ``'"/quoted path"'`` stays quoted)."""
    if isinstance(keys, str):
        return keys
    return "".join(f"  {key}: {value}\n" for key, value in keys.items())


def write_legacy_config(root: Path, ucondb: Any, *, run_records: Path, artdaqdb_uri: str,
                        folder: str, password_env: str, timeout_seconds: float = 5,
                        retries: Optional[int] = 1, app: Keys = "",
                        source: Optional[Keys] = None, extra_yaml: str = "") -> Path:
    """Write ``root/config.yaml`` (and ``root/fcl_conf/schema.fcl``) and return its path.

    ``ucondb`` needs ``base_url`` and ``user`` (a running server, or a proxy in front of one);
    the writer password is ``${<password_env>}``. ``app`` / ``source`` are further keys of
    ``app`` (after ``work_dir: root/work``) and ``source_files`` (default
    ``finished_after_seconds: 3600``); ``retries`` None leaves the key out; ``extra_yaml`` is
    appended (more top-level sections such as ``reporting`` or ``carbon``)."""
    root = Path(root)
    fcl_conf = root / "fcl_conf"
    fcl_conf.mkdir(parents=True, exist_ok=True)
    (fcl_conf / "schema.fcl").write_text(default_schema_text())
    source = {"finished_after_seconds": 3600} if source is None else source
    retries_line = "" if retries is None else f"  retries: {retries}\n"
    config = root / "config.yaml"
    config.write_text(f"""
app:
  work_dir: "{root / 'work'}"
{_lines(app)}
source_files:
  run_records_dir: "{run_records}"
{_lines(source)}
artdaq_db:
  fcl_conf_dir: "{fcl_conf}"
  database_uri: "{artdaqdb_uri}"
ucon_db:
  server_url: "{ucondb.base_url}"
  folder_name: {folder}
  object_name: configuration
  timeout_seconds: {timeout_seconds}
{retries_line}  writer_user: "{ucondb.user}"
  writer_password: "${{{password_env}}}"
{extra_yaml}
""")
    return config
