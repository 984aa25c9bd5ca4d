"""The legacy ``config.yaml``: safe loading, the ``${VAR:-default}`` / ``${section.key}``
expansion, and typed, frozen configuration sections whose repr never shows a secret.

Deviations from the legacy loader, each reported in ``ArchiverConfig.warnings`` when it matters:

* **Expansion is one pass.** The legacy loader expanded environment references in up to 10 rounds
  and then parameter references in up to 5 passes, so a value taken from the environment was
  expanded again: ``UCONDB_PASSWORD='ab${HOME}cd'`` became ``ab/rootcd`` (and a 401). Here every
  ``${…}`` written in the file is replaced once and what the environment supplies is final text.
  The syntax is unchanged: ``${NAME}``, ``${NAME:-default}`` (the default is the file's text and
  may itself hold references), a set-but-empty variable stays empty, ``${name}`` /
  ``${section.name}`` parameter references with an optional ``:-default`` that runs to the first
  ``}``, one level deep, cycles are a ConfigError naming the key.

* **Flags.** The legacy tool used Python truthiness, so the *string* ``"false"`` (typically from an
  environment default such as ``${USE_TOOLS:-false}``) counted as true. Here the strings ``false``,
  ``no``, ``0``, ``off`` and the empty string (any case, surrounding blanks ignored) are false, and
  a warning says the legacy tool would have read the value as true. Other strings stay true (legacy
  truthiness); an unrecognised one such as ``"maybe"`` also gets a warning.
* **Types.** A value that is not an integer where one is expected (``batch_size: "abc"``) is a
  ConfigError naming ``app.batch_size``, not a traceback; booleans are not accepted as integers.
* **Unknown keys** are reported as warnings, never silently ignored.
* **Required means non-empty**: a required key that expands to an empty string (for example a
  set-but-empty ``UCONDB_PASSWORD``) is a ConfigError naming the key, not an empty credential.
* New keys (defaults keep the legacy behaviour): ``app.on_existing``, ``app.dagster_home``,
  ``app.max_run_number_jump`` (a run more than this above the next lower one is reported and
  does not move the incremental mark, ``archiver_resources.run_numbers``),
  ``source_files.finished_after_seconds``, ``source_files.max_file_bytes``,
  ``artdaq_db.tool_timeout_seconds``, ``artdaq_db.backend`` (``auto``: bulk tools when
  ``use_tools``, else the native MongoDB or filesystemdb implementation; ``conftoolp`` selects the
  legacy SWIG module explicitly), ``ucon_db.verify_tls``, ``ucon_db.ca_bundle``,
  ``ucon_db.retries``, ``ucon_db.create_folder`` (an upload that finds the UconDB folder missing
  creates it; default false: the error names the folder and says how to create it),
  ``reporting.slack.webhook_url``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional
from urllib.parse import unquote, urlsplit

import yaml

from archiver_resources.errors import ConfigError
from archiver_resources.redaction import MASK, redact_uri
from archiver_resources.run_numbers import DEFAULT_MAX_JUMP

# ---------------------------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------------------------

CONVERTER_NAMES = ("boot", "metadata", "known_boardreaders_list", "settings", "setup",
                   "environment", "ranks")
GENERATOR_NAMES = ("RunHistory", "RunHistory2")
FHICLIZE_NAMES = frozenset(CONVERTER_NAMES + GENERATOR_NAMES)
ON_EXISTING_CHOICES = ("skip", "verify", "new_version", "fail")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
REQUIRED_SECTIONS = ("source_files", "artdaq_db", "ucon_db")
ARTDAQ_BACKENDS = ("auto", "filesystem", "mongo", "conftoolp", "bulktools")
OPTIONAL_SECTIONS = ("app", "app_fuzz", "reporting", "carbon", "fhiclize_generate")
DEFAULT_WORK_DIR = "/tmp/run_record_archiver"
_FALSE_STRINGS = {"false", "no", "0", "off", ""}
#: ``1`` in the environment has the effect of ``ucon_db.create_folder: true``; the command line
#: sets it for its worker processes when given ``--create-ucondb-folder``.
CREATE_UCONDB_FOLDER_ENV = "ARCHIVER_UCONDB_CREATE_FOLDER"
_TRUE_STRINGS = {"true", "yes", "1", "on"}

_PARAM_REF_RE = re.compile(r"\$\{([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*)(?::-([^}]*))?\}")


# ---------------------------------------------------------------------------------------------
# Expansion: one pass over the text of the file
# ---------------------------------------------------------------------------------------------

def _matching_brace(text: str, start: int) -> int:
    """Index of the ``}`` closing the ``${`` at ``start``, honouring nesting; -1 if unclosed."""
    depth = 0
    i = start
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _flatten(doc: Mapping[str, Any]) -> dict[str, Any]:
    """One level: ``section.key`` for direct children of top-level mappings."""
    flat: dict[str, Any] = {}
    for section, body in doc.items():
        if isinstance(body, Mapping):
            for key, value in body.items():
                flat[f"{section}.{key}"] = value
    return flat


class _Expander:
    """Replaces each ``${…}`` written in the file exactly once.

    ``${NAME}`` / ``${NAME:-default}`` (first character upper-case) is an environment reference;
    ``${name}`` / ``${section.name}`` (lower-case identifiers, optionally ``:-default``) a
    parameter reference, resolved from the file's own text. What comes in from the environment,
    and a non-string parameter, is final text: it is never scanned for references again, so a
    password such as ``ab${HOME}cd`` arrives as written. ``params`` None: parameter references are
    left as written (:func:`expand_env`).
    """

    def __init__(self, environ: Mapping[str, str], params: Optional[Mapping[str, Any]]):
        self.environ = environ
        self.params = params
        self.resolved: dict[str, str] = {}

    def text(self, text: str, section: Optional[str], stack: tuple[str, ...] = ()) -> str:
        out: list[str] = []
        i = 0
        while True:
            start = text.find("${", i)
            if start < 0:
                out.append(text[i:])
                return "".join(out)
            out.append(text[i:start])
            if text[start + 2:start + 3].isupper():
                end = _matching_brace(text, start)
                if end < 0:  # unclosed: the rest stays literally
                    out.append(text[start:])
                    return "".join(out)
                out.append(self._environment(text[start + 2:end], section, stack))
                i = end + 1
                continue
            match = _PARAM_REF_RE.match(text, start) if self.params is not None else None
            if match is None:  # not a reference: literal
                out.append("${")
                i = start + 2
                continue
            out.append(self._parameter(match, section, stack))
            i = match.end()

    def _environment(self, inner: str, section: Optional[str], stack: tuple[str, ...]) -> str:
        name, has_default, default = inner.partition(":-")
        if name in self.environ:
            return self.environ[name]  # set-but-empty stays empty; never expanded again
        if has_default:
            return self.text(default, section, stack)  # the default is the file's text
        return ""  # unset without default

    def _parameter(self, match: re.Match, section: Optional[str], stack: tuple[str, ...]) -> str:
        name, default = match.group(1), match.group(2)
        key = name if "." in name else (f"{section}.{name}" if section else name)
        if key not in self.params:
            return default if default is not None else match.group(0)
        value = self.params[key]
        if not isinstance(value, str):
            return str(value)
        if key in self.resolved:
            return self.resolved[key]
        if key in stack:
            raise ConfigError(f"Circular reference detected: {key}", key=key)
        self.resolved[key] = self.text(value, key.split(".", 1)[0], stack + (key,))
        return self.resolved[key]


def expand_env(text: str, environ: Optional[Mapping[str, str]] = None) -> str:
    """The environment references of one string (``${NAME}`` / ``${NAME:-default}`` whose first
    character is upper-case), once; parameter references are left as written."""
    return _Expander(os.environ if environ is None else environ, None).text(text, None)


def _map_strings(node: Any, fn: Callable[[str, Optional[str]], str], section: Optional[str]) -> Any:
    if isinstance(node, str):
        return fn(node, section)
    if isinstance(node, Mapping):
        return {k: _map_strings(v, fn, section) for k, v in node.items()}
    if isinstance(node, list):
        return [_map_strings(v, fn, section) for v in node]
    return node


def expand_document(doc: Mapping[str, Any], environ: Optional[Mapping[str, str]] = None) -> dict:
    """Every string of the document with its references replaced once (a new dict): environment
    references and parameter references (``${name}`` in the same top-level section,
    ``${section.name}`` anywhere, one level deep) in a single pass over the file's text."""
    expander = _Expander(os.environ if environ is None else environ, _flatten(doc))
    return {sec: _map_strings(body, expander.text,
                              sec if isinstance(body, (Mapping, list)) else None)
            for sec, body in doc.items()}


# ---------------------------------------------------------------------------------------------
# Typed sections
# ---------------------------------------------------------------------------------------------

class _SafeRepr:
    """repr() that masks secret fields and passwords inside URI fields."""

    _SECRET_FIELDS: tuple[str, ...] = ()
    _URI_FIELDS: tuple[str, ...] = ()

    def __repr__(self) -> str:
        parts = []
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name in self._SECRET_FIELDS:
                shown = MASK if value else repr(value)
            elif f.name in self._URI_FIELDS and isinstance(value, str):
                shown = repr(redact_uri(value))
            else:
                shown = repr(value)
            parts.append(f"{f.name}={shown}")
        return f"{type(self).__name__}({', '.join(parts)})"

    __str__ = __repr__


@dataclass(frozen=True, repr=False)
class AppConfig(_SafeRepr):
    work_dir: Path = Path(DEFAULT_WORK_DIR)
    import_state_file: Path = Path(DEFAULT_WORK_DIR) / "importer_state.json"
    import_failure_log: Path = Path(DEFAULT_WORK_DIR) / "import_failures.log"
    migrate_state_file: Path = Path(DEFAULT_WORK_DIR) / "migrator_state.json"
    migrate_failure_log: Path = Path(DEFAULT_WORK_DIR) / "migrate_failures.log"
    lock_file: Path = Path(DEFAULT_WORK_DIR) / ".archiver.lock"
    batch_size: int = 5
    parallel_workers: int = 2
    run_process_retries: int = 2
    retry_delay_seconds: int = 3
    log_level: str = "INFO"
    log_file: Optional[Path] = None
    on_existing: str = "verify"
    dagster_home: Optional[Path] = None
    max_run_number_jump: int = DEFAULT_MAX_JUMP


@dataclass(frozen=True, repr=False)
class AppFuzzConfig(_SafeRepr):
    random_skip_percent: float = 0.0
    random_skip_retry: bool = False
    random_error_percent: float = 0.0
    random_error_retry: bool = False


@dataclass(frozen=True, repr=False)
class SourceConfig(_SafeRepr):
    run_records_dir: Path
    finished_after_seconds: int = 3600
    max_file_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True, repr=False)
class ArtdaqDBConfig(_SafeRepr):
    fcl_conf_dir: Path
    database_uri: str
    use_tools: bool = False
    remote_host: Optional[str] = None
    tool_timeout_seconds: int = 300
    backend: str = "auto"
    _URI_FIELDS = ("database_uri",)


@dataclass(frozen=True, repr=False)
class UconDBConfig(_SafeRepr):
    server_url: str
    folder_name: str
    object_name: str
    writer_user: str
    writer_password: str
    timeout_seconds: float = 10
    verify_tls: bool = True
    ca_bundle: Optional[str] = None
    retries: int = 3
    create_folder: bool = False
    _SECRET_FIELDS = ("writer_password",)
    _URI_FIELDS = ("server_url",)


@dataclass(frozen=True, repr=False)
class EmailConfig(_SafeRepr):
    enabled: bool = False
    recipient_email: Optional[str] = None
    sender_email: Optional[str] = None
    smtp_host: Optional[str] = None
    smtp_port: int = 25
    smtp_use_tls: bool = False
    smtp_user: Optional[str] = None
    smtp_password: Optional[str] = None
    _SECRET_FIELDS = ("smtp_password",)


@dataclass(frozen=True, repr=False)
class SlackConfig(_SafeRepr):
    enabled: bool = False
    bot_token: Optional[str] = None
    channel: Optional[str] = None
    mention_users: Optional[str] = None
    webhook_url: Optional[str] = None
    _SECRET_FIELDS = ("bot_token", "webhook_url")

    @property
    def mention_ids(self) -> tuple[str, ...]:
        """``mention_users`` split at commas, blanks dropped."""
        return tuple(u.strip() for u in (self.mention_users or "").split(",") if u.strip())


@dataclass(frozen=True, repr=False)
class ReportingConfig(_SafeRepr):
    email: EmailConfig = EmailConfig()
    slack: SlackConfig = SlackConfig()


@dataclass(frozen=True, repr=False)
class CarbonConfig(_SafeRepr):
    enabled: bool = False
    host: Optional[str] = None
    port: int = 2003
    metric_prefix: Optional[str] = None


@dataclass(frozen=True, repr=False)
class ArchiverConfig(_SafeRepr):
    """The whole configuration; ``warnings`` lists deviations, unknown keys and deprecations."""

    app: AppConfig
    source_files: SourceConfig
    artdaq_db: ArtdaqDBConfig
    ucon_db: UconDBConfig
    reporting: ReportingConfig = ReportingConfig()
    carbon: CarbonConfig = CarbonConfig()
    app_fuzz: AppFuzzConfig = AppFuzzConfig()
    fhiclize_generate: frozenset = FHICLIZE_NAMES
    warnings: tuple = ()
    path: Optional[str] = None

    def secrets(self) -> list[str]:
        """Every secret value (for log redaction): passwords, tokens, webhook, URI password."""
        values = [self.ucon_db.writer_password, self.reporting.email.smtp_password,
                  self.reporting.slack.bot_token, self.reporting.slack.webhook_url,
                  _uri_password(self.artdaq_db.database_uri), _uri_password(self.ucon_db.server_url)]
        return [v for v in dict.fromkeys(values) if v]

    @classmethod
    def from_mapping(cls, doc: Any, path: Optional[str] = None,
                     environ: Optional[Mapping[str, str]] = None) -> "ArchiverConfig":
        """Expand and convert an already-parsed YAML document (what load_config does after reading)."""
        if not isinstance(doc, Mapping):
            raise ConfigError("the document must be a mapping of sections", path=path)
        try:
            expanded = expand_document(doc, environ)
        except ConfigError as exc:
            raise ConfigError(exc.reason, key=exc.key, path=path) from exc
        return _Builder(expanded, path).build()


def ucondb_folder_creation(section: UconDBConfig,
                           environ: Optional[Mapping[str, str]] = None) -> bool:
    """Whether an upload that finds the UconDB folder missing creates it: ``create_folder``
    in config.yaml, or ``ARCHIVER_UCONDB_CREATE_FOLDER=1`` (``--create-ucondb-folder``)."""
    environ = os.environ if environ is None else environ
    return section.create_folder or environ.get(CREATE_UCONDB_FOLDER_ENV) == "1"


def _uri_password(uri: Optional[str]) -> Optional[str]:
    if not uri:
        return None
    try:
        password = urlsplit(uri).password
    except ValueError:
        return None
    return unquote(password) if password else None


# ---------------------------------------------------------------------------------------------
# Loading and conversion
# ---------------------------------------------------------------------------------------------

def load_config(path: str | os.PathLike, environ: Optional[Mapping[str, str]] = None) -> ArchiverConfig:
    """Read ``config.yaml`` safely, replace its ``${…}`` references once (environment and the
    file's own keys) and convert it to typed sections."""
    shown = str(path)
    try:
        with open(path, "r", encoding="utf-8") as handle:
            doc = yaml.safe_load(handle)
    except FileNotFoundError as exc:
        raise ConfigError("configuration file not found", path=shown) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file: {exc}", path=shown) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML error: {exc}", path=shown) from exc
    if not isinstance(doc, dict):
        raise ConfigError("invalid or empty: the document must be a mapping of sections",
                          path=shown)
    return ArchiverConfig.from_mapping(doc, path=shown, environ=environ)


def parse_fhiclize_generate(value: Any) -> frozenset[str]:
    """List, ``{files: [...]}`` or None (= all nine); ``.txt``/``.fcl`` suffixes stripped."""
    if value is None:
        return FHICLIZE_NAMES
    if isinstance(value, Mapping):
        unknown = set(value) - {"files"}
        if unknown:
            raise ConfigError(f"unknown keys {sorted(unknown)}; expected {{files: [...]}}",
                              key="fhiclize_generate")
        return parse_fhiclize_generate(value.get("files"))
    if not isinstance(value, list):
        raise ConfigError(f"must be a list of names or {{files: [...]}}, got {value!r}",
                          key="fhiclize_generate")
    names = set()
    for item in value:
        name = str(item)
        for suffix in (".txt", ".fcl"):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
        if name not in FHICLIZE_NAMES:
            raise ConfigError(f"unknown converter/generator {item!r}; known: "
                              f"{', '.join(CONVERTER_NAMES + GENERATOR_NAMES)}",
                              key="fhiclize_generate")
        names.add(name)
    return frozenset(names)


_KNOWN_KEYS = {
    "app": {f.name for f in dataclasses.fields(AppConfig)},
    "app_fuzz": {f.name for f in dataclasses.fields(AppFuzzConfig)},
    "source_files": {f.name for f in dataclasses.fields(SourceConfig)},
    "artdaq_db": {f.name for f in dataclasses.fields(ArtdaqDBConfig)},
    "ucon_db": {f.name for f in dataclasses.fields(UconDBConfig)},
    "reporting.email": {f.name for f in dataclasses.fields(EmailConfig)},
    "reporting.slack": {f.name for f in dataclasses.fields(SlackConfig)},
    "carbon": {f.name for f in dataclasses.fields(CarbonConfig)},
}
_DEPRECATED_EMAIL_KEYS = {"send_email_on_error", "recipient_email", "sender_email", "smtp_host",
                          "smtp_port", "smtp_use_tls", "smtp_user", "smtp_password"}


class _Builder:
    """Typed conversion of an expanded document; collects warnings."""

    def __init__(self, doc: Mapping[str, Any], path: Optional[str]):
        self.doc = doc
        self.path = path
        self.warnings: list[str] = []

    # -- helpers ----------------------------------------------------------------------------

    def error(self, key: str, reason: str) -> ConfigError:
        return ConfigError(reason, key=key, path=self.path)

    def section(self, name: str, required: bool = False) -> Mapping[str, Any]:
        if name not in self.doc:
            if required:
                raise self.error(name, f"Top-level configuration key missing: '{name}'")
            return {}
        body = self.doc[name]
        if body is None and not required:
            return {}
        if not isinstance(body, Mapping):
            raise self.error(name, f"must be a mapping of keys, got {type(body).__name__}")
        return body

    def warn_unknown(self, name: str, body: Mapping[str, Any], extra: frozenset = frozenset()):
        for key in body:
            if key not in _KNOWN_KEYS[name] and key not in extra:
                self.warnings.append(f"unknown key '{name}.{key}' ignored")

    def required_str(self, sec: str, body: Mapping[str, Any], key: str) -> str:
        value = body.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise self.error(f"{sec}.{key}", "required key missing or empty")
        if isinstance(value, (Mapping, list)):
            raise self.error(f"{sec}.{key}", "must be a single value, not a mapping or list")
        return str(value)

    def opt_str(self, sec: str, body: Mapping[str, Any], key: str) -> Optional[str]:
        value = body.get(key)
        if value is None:
            return None
        if isinstance(value, (Mapping, list)):
            raise self.error(f"{sec}.{key}", "must be a single value, not a mapping or list")
        return str(value)

    def integer(self, sec: str, body: Mapping[str, Any], key: str, default: int,
                minimum: Optional[int] = None) -> int:
        value = body.get(key, default)
        if value is None:
            value = default
        if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
            raise self.error(f"{sec}.{key}", f"expected an integer, got {value!r}")
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise self.error(f"{sec}.{key}", f"expected an integer, got {value!r}") from None
        if minimum is not None and number < minimum:
            raise self.error(f"{sec}.{key}", f"must be at least {minimum}, got {number}")
        return number

    def number(self, sec: str, body: Mapping[str, Any], key: str, default: float,
               minimum: float = 0) -> float:
        value = body.get(key, default)
        if value is None:
            value = default
        if isinstance(value, bool):
            raise self.error(f"{sec}.{key}", f"expected a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise self.error(f"{sec}.{key}", f"expected a number, got {value!r}") from None
        if number < minimum:
            raise self.error(f"{sec}.{key}", f"must be at least {minimum:g}, got {number:g}")
        return number

    def flag(self, sec: str, body: Mapping[str, Any], key: str, default: bool) -> bool:
        value = body.get(key, default)
        if isinstance(value, str):
            word = value.strip().lower()
            if word in _FALSE_STRINGS:
                if value:
                    self.warnings.append(
                        f"'{sec}.{key}': the string {value!r} is read as false (the legacy "
                        "tool read any non-empty string as true)")
                return False
            if word not in _TRUE_STRINGS:
                self.warnings.append(f"'{sec}.{key}': {value!r} is not a recognised flag value; "
                                     "read as true")
            return True
        if isinstance(value, (Mapping, list)):
            raise self.error(f"{sec}.{key}", f"expected true or false, got {value!r}")
        return bool(value)

    def as_path(self, value: Optional[str]) -> Optional[Path]:
        return Path(value) if value else None

    # -- sections ---------------------------------------------------------------------------

    def build(self) -> ArchiverConfig:
        for name in self.doc:
            if name not in REQUIRED_SECTIONS + OPTIONAL_SECTIONS:
                self.warnings.append(f"unknown top-level key '{name}' ignored")
        source = self.source_files()
        artdaq = self.artdaq_db()
        ucon = self.ucon_db()
        try:
            generate = parse_fhiclize_generate(self.doc.get("fhiclize_generate"))
        except ConfigError as exc:
            raise ConfigError(exc.reason, key=exc.key, path=self.path) from exc
        return ArchiverConfig(
            app=self.app(), source_files=source, artdaq_db=artdaq, ucon_db=ucon,
            reporting=self.reporting(), carbon=self.carbon(), app_fuzz=self.app_fuzz(),
            fhiclize_generate=generate, warnings=tuple(self.warnings), path=self.path)

    def app(self) -> AppConfig:
        body = self.section("app")
        self.warn_unknown("app", body)
        work_dir = Path(self.opt_str("app", body, "work_dir") or DEFAULT_WORK_DIR)

        def file(key: str, name: str) -> Path:
            return Path(self.opt_str("app", body, key) or work_dir / name)

        level = (self.opt_str("app", body, "log_level") or "INFO").upper()
        if level not in LOG_LEVELS:
            self.warnings.append(f"'app.log_level': unknown level {level!r}; using INFO")
            level = "INFO"
        on_existing = self.opt_str("app", body, "on_existing") or "verify"
        if on_existing not in ON_EXISTING_CHOICES:
            raise self.error("app.on_existing", f"must be one of {', '.join(ON_EXISTING_CHOICES)}"
                             f", got {on_existing!r}")
        return AppConfig(
            work_dir=work_dir,
            import_state_file=file("import_state_file", "importer_state.json"),
            import_failure_log=file("import_failure_log", "import_failures.log"),
            migrate_state_file=file("migrate_state_file", "migrator_state.json"),
            migrate_failure_log=file("migrate_failure_log", "migrate_failures.log"),
            lock_file=file("lock_file", ".archiver.lock"),
            batch_size=self.integer("app", body, "batch_size", 5, minimum=1),
            parallel_workers=self.integer("app", body, "parallel_workers", 2, minimum=1),
            run_process_retries=self.integer("app", body, "run_process_retries", 2, minimum=0),
            retry_delay_seconds=self.integer("app", body, "retry_delay_seconds", 3, minimum=0),
            log_level=level,
            log_file=self.as_path(self.opt_str("app", body, "log_file")),
            on_existing=on_existing,
            dagster_home=self.as_path(self.opt_str("app", body, "dagster_home")),
            max_run_number_jump=self.integer("app", body, "max_run_number_jump", DEFAULT_MAX_JUMP,
                                             minimum=1),
        )

    def app_fuzz(self) -> AppFuzzConfig:
        body = self.section("app_fuzz")
        self.warn_unknown("app_fuzz", body)
        return AppFuzzConfig(
            random_skip_percent=self.number("app_fuzz", body, "random_skip_percent", 0),
            random_skip_retry=self.flag("app_fuzz", body, "random_skip_retry", False),
            random_error_percent=self.number("app_fuzz", body, "random_error_percent", 0),
            random_error_retry=self.flag("app_fuzz", body, "random_error_retry", False))

    def source_files(self) -> SourceConfig:
        body = self.section("source_files", required=True)
        self.warn_unknown("source_files", body)
        return SourceConfig(
            run_records_dir=Path(self.required_str("source_files", body, "run_records_dir")),
            finished_after_seconds=self.integer("source_files", body, "finished_after_seconds",
                                                3600, minimum=0),
            max_file_bytes=self.integer("source_files", body, "max_file_bytes",
                                        64 * 1024 * 1024, minimum=1))

    def artdaq_db(self) -> ArtdaqDBConfig:
        body = self.section("artdaq_db", required=True)
        self.warn_unknown("artdaq_db", body)
        return ArtdaqDBConfig(
            fcl_conf_dir=Path(self.required_str("artdaq_db", body, "fcl_conf_dir")),
            database_uri=self.required_str("artdaq_db", body, "database_uri"),
            use_tools=self.flag("artdaq_db", body, "use_tools", False),
            remote_host=self.opt_str("artdaq_db", body, "remote_host") or None,
            tool_timeout_seconds=self.integer("artdaq_db", body, "tool_timeout_seconds", 300,
                                              minimum=1),
            backend=self.artdaq_backend(body))

    def artdaq_backend(self, body: Mapping[str, Any]) -> str:
        backend = self.opt_str("artdaq_db", body, "backend") or "auto"
        if backend not in ARTDAQ_BACKENDS:
            raise self.error("artdaq_db.backend", f"must be one of {', '.join(ARTDAQ_BACKENDS)}, "
                             f"got {backend!r}")
        return backend

    def ucon_db(self) -> UconDBConfig:
        body = self.section("ucon_db", required=True)
        self.warn_unknown("ucon_db", body)
        server_url = self.required_str("ucon_db", body, "server_url")
        if not server_url.endswith("/app"):
            raise self.error("ucon_db.server_url", "must end with '/app' (e.g. https://host:9443/"
                             f"instance/app), got {redact_uri(server_url)!r}")
        return UconDBConfig(
            server_url=server_url,
            folder_name=self.required_str("ucon_db", body, "folder_name"),
            object_name=self.required_str("ucon_db", body, "object_name"),
            writer_user=self.required_str("ucon_db", body, "writer_user"),
            writer_password=self.required_str("ucon_db", body, "writer_password"),
            timeout_seconds=self.number("ucon_db", body, "timeout_seconds", 10, minimum=0.001),
            verify_tls=self.flag("ucon_db", body, "verify_tls", True),
            ca_bundle=self.opt_str("ucon_db", body, "ca_bundle") or None,
            retries=self.integer("ucon_db", body, "retries", 3, minimum=0),
            create_folder=self.flag("ucon_db", body, "create_folder", False))

    def reporting(self) -> ReportingConfig:
        body = self.section("reporting")
        for key in body:
            if key not in ("email", "slack") and key not in _DEPRECATED_EMAIL_KEYS:
                self.warnings.append(f"unknown key 'reporting.{key}' ignored")
        return ReportingConfig(email=self.email(body), slack=self.slack(body))

    def email(self, reporting: Mapping[str, Any]) -> EmailConfig:
        if "send_email_on_error" in reporting:
            self.warnings.append("DEPRECATED: 'reporting.send_email_on_error'; use a "
                                 "'reporting.email' block with 'enabled'")
        if "send_email_on_error" in reporting and "email" not in reporting:
            sec, body = "reporting", dict(reporting)
            enabled = self.flag(sec, body, "send_email_on_error", False)
            port, tls = 587, True
        else:
            sec, body = "reporting.email", self._sub(reporting, "email")
            self.warn_unknown("reporting.email", body)
            enabled = self.flag(sec, body, "enabled", False)
            port, tls = 25, False
        config = EmailConfig(
            enabled=enabled,
            recipient_email=self.opt_str(sec, body, "recipient_email"),
            sender_email=self.opt_str(sec, body, "sender_email"),
            smtp_host=self.opt_str(sec, body, "smtp_host"),
            smtp_port=self.integer(sec, body, "smtp_port", port, minimum=1),
            smtp_use_tls=self.flag(sec, body, "smtp_use_tls", tls),
            smtp_user=self.opt_str(sec, body, "smtp_user"),
            smtp_password=self.opt_str(sec, body, "smtp_password"))
        if enabled:
            for key in ("recipient_email", "sender_email", "smtp_host"):
                if not getattr(config, key):
                    raise self.error(f"{sec}.{key}", "required when email is enabled")
        return config

    def slack(self, reporting: Mapping[str, Any]) -> SlackConfig:
        body = self._sub(reporting, "slack")
        self.warn_unknown("reporting.slack", body)
        sec = "reporting.slack"
        config = SlackConfig(
            enabled=self.flag(sec, body, "enabled", False),
            bot_token=self.opt_str(sec, body, "bot_token"),
            channel=self.opt_str(sec, body, "channel"),
            mention_users=self.opt_str(sec, body, "mention_users"),
            webhook_url=self.opt_str(sec, body, "webhook_url"))
        if config.enabled and not config.webhook_url:
            for key in ("bot_token", "channel"):
                if not getattr(config, key):
                    raise self.error(f"{sec}.{key}", "required when Slack is enabled "
                                     "(or set webhook_url)")
        return config

    def _sub(self, parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        body = parent.get(key)
        if body is None:
            return {}
        if not isinstance(body, Mapping):
            raise self.error(f"reporting.{key}", "must be a mapping of keys")
        return body

    def carbon(self) -> CarbonConfig:
        body = self.section("carbon")
        self.warn_unknown("carbon", body)
        config = CarbonConfig(
            enabled=self.flag("carbon", body, "enabled", False),
            host=self.opt_str("carbon", body, "host"),
            port=self.integer("carbon", body, "port", 2003, minimum=1),
            metric_prefix=self.opt_str("carbon", body, "metric_prefix"))
        if config.enabled:
            for key in ("host", "metric_prefix"):
                if not getattr(config, key):
                    raise self.error(f"carbon.{key}", "required when carbon is enabled")
        return config


# ---------------------------------------------------------------------------------------------
# A default configuration in the legacy format
# ---------------------------------------------------------------------------------------------

def default_document() -> dict:
    """The legacy template's content (environment references included) as a mapping."""
    return {
        "app": {
            "work_dir": "${WORK_DIR:-/tmp/run_record_archiver}",
            "import_state_file": "${work_dir}/importer_state.json",
            "import_failure_log": "${work_dir}/import_failures.log",
            "migrate_state_file": "${work_dir}/migrator_state.json",
            "migrate_failure_log": "${work_dir}/migrate_failures.log",
            "lock_file": "${work_dir}/.archiver.lock",
            "batch_size": 5, "parallel_workers": 2, "run_process_retries": 2,
            "retry_delay_seconds": 3, "log_level": "INFO",
            "log_file": "${work_dir}/archiver.log",
            "on_existing": "verify",
        },
        "fhiclize_generate": ["boot", "metadata", "known_boardreaders_list", "RunHistory",
                              "RunHistory2", "settings", "setup", "environment", "ranks"],
        "app_fuzz": {"random_skip_percent": 0, "random_skip_retry": False,
                     "random_error_percent": 0, "random_error_retry": False},
        "source_files": {"run_records_dir": "${RUN_RECORDS_DIR:-/daq/run_records}",
                         "finished_after_seconds": 3600},
        "artdaq_db": {
            "fcl_conf_dir": "/path/to/artdaq_database/conf",
            "database_uri": "${ARTDAQDB_URL:-filesystemdb:///path/to/your/filesystem/db_archive}",
            "use_tools": False, "remote_host": None,
        },
        "ucon_db": {
            "server_url": "${UCONDB_URL:-https://your-ucondb-host.example.com:9443/"
                          "ucondb-instance/app}",
            "folder_name": "test01", "object_name": "configuration", "timeout_seconds": 10,
            "writer_user": "${UCONDB_USER:-your_username}",
            "writer_password": "${UCONDB_PASSWORD:-your_password}",
        },
        "reporting": {
            "email": {"enabled": False, "recipient_email": "${NOTIFY_EMAIL_LIST:-user@example.com}",
                      "sender_email": "archiver@example.com", "smtp_host": "smtp.example.com",
                      "smtp_port": 25, "smtp_use_tls": False, "smtp_user": None,
                      "smtp_password": None},
            "slack": {"enabled": False, "bot_token": "${SLACK_BOT_TOKEN:-}",
                      "channel": "#run-archiver-alerts", "mention_users": None},
        },
        "carbon": {"enabled": False, "host": "your-carbon-host.local", "port": 2003,
                   "metric_prefix": "${EXPERIMENT_NAME:-demo}.run_archiver.dev"},
    }


def render_default_config(**overrides: Any) -> str:
    """A valid legacy-format config.yaml; ``key=value`` sets a key that exists in exactly one
    section, ``section__key=value`` / ``reporting__email__enabled=True`` a key explicitly."""
    doc = default_document()
    for name, value in overrides.items():
        _apply_override(doc, name, value)
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True)


def _apply_override(doc: dict, name: str, value: Any) -> None:
    if "__" in name:
        *parents, key = name.split("__")
        node = doc
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {name!r}: {part!r} is not a section")
        node[key] = str(value) if isinstance(value, Path) else value
        return
    holders = [sec for sec in ("app", "source_files", "artdaq_db", "ucon_db", "carbon",
                               "app_fuzz") if name in _KNOWN_KEYS[sec]]
    if len(holders) != 1:
        raise ValueError(f"override {name!r} names no single section key; "
                         "use section__key=value")
    doc[holders[0]][name] = str(value) if isinstance(value, Path) else value
