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
  One ConfigError lists every problem of the file (its ``key`` is the first one's), each with
  the key path, the value found and the type expected. A secret key's value is never shown, the
  password of a URI is masked, and a secret found under another key is replaced by ``***``.
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

import os
import re
from pathlib import Path
from typing import Annotated, Any, Callable, ClassVar, Literal, Mapping, Optional
from urllib.parse import unquote, urlsplit

import yaml
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field,
                      ValidationError, ValidationInfo, model_validator)
from pydantic_core import PydanticCustomError

from archiver_resources.errors import ConfigError
from archiver_resources.redaction import MASK, redact, redact_uri
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
# Value kinds: what the legacy loader accepted for each key, as pydantic validators
# ---------------------------------------------------------------------------------------------
#
# Each validator converts an expanded YAML value as the legacy tool did (``int()``, ``str()``,
# ``value or default``; flags as described above) and raises a PydanticCustomError whose
# message names the expected type. ``_problems`` turns pydantic's errors into key paths and adds
# the bad value (only the kind of value for a secret key; a URI without its password).

def _warn(info: ValidationInfo, text: str) -> None:
    checks = (info.context or {}).get("checks")
    if checks is not None and info.field_name:
        checks.warn(info.field_name, text)


def _text(value: Any) -> str:
    if isinstance(value, (Mapping, list)):
        raise PydanticCustomError("config_text", "expected a single value (text or a number)")
    return str(value)


def _required_text(value: Any) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise PydanticCustomError("config_required", "required key missing or empty")
    return _text(value)


def _integer(value: Any) -> int:
    # bool is an int to Python but never a count here; 2.0 is accepted, 2.5 is not (legacy int())
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise PydanticCustomError("config_int", "expected an integer")
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise PydanticCustomError("config_int", "expected an integer") from None


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise PydanticCustomError("config_number", "expected a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise PydanticCustomError("config_number", "expected a number") from None


def _flag(value: Any, info: ValidationInfo) -> bool:
    """Legacy truthiness, except that the usual words for false are false (with a warning)."""
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _FALSE_STRINGS:
            if value:
                _warn(info, f"the string {value!r} is read as false (the legacy tool read any "
                            "non-empty string as true)")
            return False
        if word not in _TRUE_STRINGS:
            _warn(info, f"{value!r} is not a recognised flag value; read as true")
        return True
    if isinstance(value, (Mapping, list)):
        raise PydanticCustomError("config_flag", "expected true or false")
    return bool(value)  # None (an empty YAML value) is false, as in the legacy tool


def _log_level(value: Any, info: ValidationInfo) -> str:
    level = _text(value).upper()
    if level not in LOG_LEVELS:
        _warn(info, f"unknown level {level!r}; using INFO")
        return "INFO"
    return level


def _ucondb_app_url(value: str) -> str:
    if not value.endswith("/app"):
        raise PydanticCustomError(
            "config_url", "must end with '/app' (e.g. https://host:9443/instance/app)")
    return value


class _EmptyMeansDefault:
    """Field marker: an empty string in the file means the key's default (legacy ``value or
    default``), as a missing key or an empty YAML value does."""

    def __repr__(self) -> str:
        return "EMPTY_MEANS_DEFAULT"


_EMPTY_MEANS_DEFAULT = _EmptyMeansDefault()
_FLAG = BeforeValidator(_flag)

Text = Annotated[str, BeforeValidator(_text)]
RequiredText = Annotated[str, BeforeValidator(_required_text)]
Integer = Annotated[int, BeforeValidator(_integer)]
Number = Annotated[float, BeforeValidator(_number)]
Flag = Annotated[bool, _FLAG]
PathValue = Annotated[Path, BeforeValidator(lambda value: Path(_text(value))),
                      _EMPTY_MEANS_DEFAULT]
RequiredPath = Annotated[Path, BeforeValidator(lambda value: Path(_required_text(value)))]
OptionalText = Annotated[Optional[Text], _EMPTY_MEANS_DEFAULT]   # "" → None


# ---------------------------------------------------------------------------------------------
# Typed sections
# ---------------------------------------------------------------------------------------------

class _Frozen(BaseModel):
    """Immutable; repr() masks secret fields and the password inside URI fields."""

    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)

    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ()
    URI_FIELDS: ClassVar[tuple[str, ...]] = ()

    def __repr_args__(self):
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name in self.SECRET_FIELDS and value:
                yield name, _Literal(MASK)
            elif name in self.URI_FIELDS and isinstance(value, str):
                yield name, redact_uri(value)
            else:
                yield name, value

    def __str__(self) -> str:
        return repr(self)


class _Literal(str):
    def __repr__(self) -> str:
        return str(self)


class _Section(_Frozen):
    """One mapping of config.yaml. Before the fields are validated: unknown keys are dropped
    (the loader has warned about them), an empty YAML value means the default (a flag's is
    false, as in the legacy tool), and so does ``""`` for a key marked _EMPTY_MEANS_DEFAULT."""

    @model_validator(mode="before")
    @classmethod
    def _unset_values(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        fields = cls.model_fields
        kept = {}
        for key, value in data.items():
            info = fields.get(key)
            if info is None:
                continue
            if value is None and _FLAG not in info.metadata:
                continue
            if isinstance(value, str) and not value and _EMPTY_MEANS_DEFAULT in info.metadata:
                continue
            kept[key] = value
        return cls._derive(kept)

    @classmethod
    def _derive(cls, data: dict) -> dict:
        return data

    def _require_when_enabled(self, keys: tuple[str, ...], reason: str) -> None:
        for key in keys:
            if not getattr(self, key):
                raise PydanticCustomError("config_required", reason, {"key": key})


_APP_FILES = {"import_state_file": "importer_state.json",
              "import_failure_log": "import_failures.log",
              "migrate_state_file": "migrator_state.json",
              "migrate_failure_log": "migrate_failures.log",
              "lock_file": ".archiver.lock"}


class AppConfig(_Section):
    work_dir: PathValue = Path(DEFAULT_WORK_DIR)
    import_state_file: PathValue = Path(DEFAULT_WORK_DIR) / "importer_state.json"
    import_failure_log: PathValue = Path(DEFAULT_WORK_DIR) / "import_failures.log"
    migrate_state_file: PathValue = Path(DEFAULT_WORK_DIR) / "migrator_state.json"
    migrate_failure_log: PathValue = Path(DEFAULT_WORK_DIR) / "migrate_failures.log"
    lock_file: PathValue = Path(DEFAULT_WORK_DIR) / ".archiver.lock"
    batch_size: Annotated[Integer, Field(ge=1)] = 5
    parallel_workers: Annotated[Integer, Field(ge=1)] = 2
    run_process_retries: Annotated[Integer, Field(ge=0)] = 2
    retry_delay_seconds: Annotated[Integer, Field(ge=0)] = 3
    log_level: Annotated[str, BeforeValidator(_log_level), _EMPTY_MEANS_DEFAULT] = "INFO"
    log_file: Annotated[Optional[PathValue], _EMPTY_MEANS_DEFAULT] = None
    on_existing: Annotated[Literal[ON_EXISTING_CHOICES], _EMPTY_MEANS_DEFAULT] = "verify"
    dagster_home: Annotated[Optional[PathValue], _EMPTY_MEANS_DEFAULT] = None
    max_run_number_jump: Annotated[Integer, Field(ge=1)] = DEFAULT_MAX_JUMP

    @classmethod
    def _derive(cls, data: dict) -> dict:
        """The state files, failure logs and lock file default to ``<work_dir>/<name>``."""
        work_dir = data.get("work_dir", DEFAULT_WORK_DIR)
        if isinstance(work_dir, (Mapping, list)):
            return data  # the work_dir error is reported; these keep their defaults
        for key, name in _APP_FILES.items():
            data.setdefault(key, Path(str(work_dir)) / name)
        return data


class AppFuzzConfig(_Section):
    random_skip_percent: Annotated[Number, Field(ge=0)] = 0.0
    random_skip_retry: Flag = False
    random_error_percent: Annotated[Number, Field(ge=0)] = 0.0
    random_error_retry: Flag = False


class SourceConfig(_Section):
    run_records_dir: RequiredPath
    finished_after_seconds: Annotated[Integer, Field(ge=0)] = 3600
    max_file_bytes: Annotated[Integer, Field(ge=1)] = 64 * 1024 * 1024


class ArtdaqDBConfig(_Section):
    fcl_conf_dir: RequiredPath
    database_uri: RequiredText
    use_tools: Flag = False
    remote_host: OptionalText = None
    tool_timeout_seconds: Annotated[Integer, Field(ge=1)] = 300
    backend: Annotated[Literal[ARTDAQ_BACKENDS], _EMPTY_MEANS_DEFAULT] = "auto"

    URI_FIELDS = ("database_uri",)


class UconDBConfig(_Section):
    server_url: Annotated[RequiredText, AfterValidator(_ucondb_app_url)]
    folder_name: RequiredText
    object_name: RequiredText
    writer_user: RequiredText
    writer_password: RequiredText
    timeout_seconds: Annotated[Number, Field(ge=0.001)] = 10.0
    verify_tls: Flag = True
    ca_bundle: OptionalText = None
    retries: Annotated[Integer, Field(ge=0)] = 3
    create_folder: Flag = False

    SECRET_FIELDS = ("writer_password",)
    URI_FIELDS = ("server_url",)


class EmailConfig(_Section):
    enabled: Flag = False
    recipient_email: Optional[Text] = None
    sender_email: Optional[Text] = None
    smtp_host: Optional[Text] = None
    smtp_port: Annotated[Integer, Field(ge=1)] = 25
    smtp_use_tls: Flag = False
    smtp_user: Optional[Text] = None
    smtp_password: Optional[Text] = None

    SECRET_FIELDS = ("smtp_password",)

    @model_validator(mode="after")
    def _enabled_needs_addresses(self) -> "EmailConfig":
        if self.enabled:
            self._require_when_enabled(("recipient_email", "sender_email", "smtp_host"),
                                       "required when email is enabled")
        return self


class SlackConfig(_Section):
    enabled: Flag = False
    bot_token: Optional[Text] = None
    channel: Optional[Text] = None
    mention_users: Optional[Text] = None
    webhook_url: Optional[Text] = None

    SECRET_FIELDS = ("bot_token", "webhook_url")

    @model_validator(mode="after")
    def _enabled_needs_a_destination(self) -> "SlackConfig":
        if self.enabled and not self.webhook_url:
            self._require_when_enabled(("bot_token", "channel"),
                                       "required when Slack is enabled (or set webhook_url)")
        return self

    @property
    def mention_ids(self) -> tuple[str, ...]:
        """``mention_users`` split at commas, blanks dropped."""
        return tuple(u.strip() for u in (self.mention_users or "").split(",") if u.strip())


class ReportingConfig(_Frozen):
    email: EmailConfig = EmailConfig()
    slack: SlackConfig = SlackConfig()


class CarbonConfig(_Section):
    enabled: Flag = False
    host: Optional[Text] = None
    port: Annotated[Integer, Field(ge=1)] = 2003
    metric_prefix: Optional[Text] = None

    @model_validator(mode="after")
    def _enabled_needs_host_and_prefix(self) -> "CarbonConfig":
        if self.enabled:
            self._require_when_enabled(("host", "metric_prefix"),
                                       "required when carbon is enabled")
        return self


class ArchiverConfig(_Frozen):
    """The whole configuration; ``warnings`` lists deviations, unknown keys and deprecations."""

    app: AppConfig
    source_files: SourceConfig
    artdaq_db: ArtdaqDBConfig
    ucon_db: UconDBConfig
    reporting: ReportingConfig = ReportingConfig()
    carbon: CarbonConfig = CarbonConfig()
    app_fuzz: AppFuzzConfig = AppFuzzConfig()
    fhiclize_generate: frozenset[str] = FHICLIZE_NAMES
    warnings: tuple[str, ...] = ()
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
        return _Loader(expanded, path).build()


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


#: The model of each mapping of config.yaml, by key path.
_SECTION_MODELS: dict[str, type[_Section]] = {
    "app": AppConfig, "app_fuzz": AppFuzzConfig, "source_files": SourceConfig,
    "artdaq_db": ArtdaqDBConfig, "ucon_db": UconDBConfig, "reporting.email": EmailConfig,
    "reporting.slack": SlackConfig, "carbon": CarbonConfig,
}
_KNOWN_KEYS = {name: set(model.model_fields) for name, model in _SECTION_MODELS.items()}
#: The deprecated form: the email keys directly under ``reporting``, ``send_email_on_error``
#: for ``enabled``; used only when there is no ``reporting.email`` block.
_DEPRECATED_EMAIL_KEYS = {"send_email_on_error", "recipient_email", "sender_email", "smtp_host",
                          "smtp_port", "smtp_use_tls", "smtp_user", "smtp_password"}
#: Where a secret can be in the expanded document: never shown in an error.
_SECRET_KEYS = (("ucon_db", "writer_password"), ("reporting", "smtp_password"),
                ("reporting", "email", "smtp_password"), ("reporting", "slack", "bot_token"),
                ("reporting", "slack", "webhook_url"))
_URI_KEYS = (("artdaq_db", "database_uri"), ("ucon_db", "server_url"))


class _Checks:
    """What validating one section reports besides errors: warnings, named by key path.
    ``names`` maps a field to the key it was read from when they differ (deprecated forms)."""

    def __init__(self, section: str, warnings: list[str], names: Optional[dict] = None):
        self.section = section
        self.warnings = warnings
        self.names = names or {}

    def key(self, field_name: str) -> str:
        return f"{self.section}.{self.names.get(field_name, field_name)}"

    def warn(self, field_name: str, text: str) -> None:
        self.warnings.append(f"'{self.key(field_name)}': {text}")


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple, set, frozenset)):
        return "a list"
    return {bool: "a flag", int: "an integer", float: "a number", str: "text"}.get(
        type(value), f"a {type(value).__name__}")


def _shown(value: Any, field_name: Optional[str], model: type[_Frozen]) -> str:
    """The bad value in an error: only the kind of a mapping or list (it may hold anything),
    never a secret key's value, a URI without its password."""
    if field_name in model.SECRET_FIELDS:
        return f"{_kind(value)} (a secret key: its value is not shown)"
    if isinstance(value, (Mapping, list, tuple, set, frozenset)) or value is None:
        return _kind(value)
    if isinstance(value, str) and field_name in model.URI_FIELDS:
        value = redact_uri(value)
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _problems(exc: ValidationError, model: type[_Section], checks: _Checks) -> list[tuple]:
    """(key path, reason) for each error pydantic found in one section."""
    found = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"]]
        ctx = error.get("ctx") or {}
        if not loc and "key" in ctx:  # a model-level check about one key
            loc = [ctx["key"]]
        key = checks.key(".".join(loc)) if loc else checks.section
        kind = error["type"]
        if kind == "missing":
            found.append((key, "required key missing or empty"))
            continue
        if kind == "config_required" or not loc:
            found.append((key, error["msg"]))
            continue
        if kind == "greater_than_equal":
            reason = f"must be at least {ctx['ge']:g}"
        elif kind == "literal_error":
            reason = f"must be one of {ctx['expected']}"
        else:
            reason = error["msg"]
        found.append((key, f"{reason}, got {_shown(error.get('input'), loc[0], model)}"))
    return found


def _dig(doc: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    node: Any = doc
    for key in keys:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


class _Loader:
    """An expanded document to ArchiverConfig: which mapping goes to which model, the
    deprecated email form, unknown keys (warnings), and one ConfigError listing every problem
    (its ``key`` the first one's)."""

    def __init__(self, doc: Mapping[str, Any], path: Optional[str]):
        self.doc = doc
        self.path = path
        self.warnings: list[str] = []
        self.problems: list[tuple[str, str]] = []

    def build(self) -> ArchiverConfig:
        for name in self.doc:
            if name not in REQUIRED_SECTIONS + OPTIONAL_SECTIONS:
                self.warnings.append(f"unknown top-level key '{name}' ignored")
        sections = {name: self.validate(name, self.mapping(self.doc, name,
                                                           name in REQUIRED_SECTIONS))
                    for name in ("app", "source_files", "artdaq_db", "ucon_db", "carbon",
                                 "app_fuzz")}
        reporting = self.reporting()
        try:
            generate = parse_fhiclize_generate(self.doc.get("fhiclize_generate"))
        except ConfigError as exc:
            self.problems.append((exc.key, exc.reason))
        if self.problems:
            raise self.error()
        secrets = self.secrets()
        return ArchiverConfig(**sections, reporting=reporting, fhiclize_generate=generate,
                              warnings=tuple(redact(w, secrets) for w in self.warnings),
                              path=self.path)

    def mapping(self, parent: Mapping[str, Any], name: str, required: bool = False,
                prefix: str = "") -> Optional[Mapping[str, Any]]:
        """A section's mapping; {} for an absent or empty optional one; None after a problem."""
        if name not in parent:
            if required:
                self.problems.append((name, f"Top-level configuration key missing: '{name}'"))
                return None
            return {}
        body = parent[name]
        if body is None and not required:
            return {}
        if not isinstance(body, Mapping):
            self.problems.append((prefix + name, f"expected a mapping of keys, got {_kind(body)}"))
            return None
        return body

    def validate(self, section: str, body: Optional[Mapping[str, Any]],
                 model: Optional[type[_Section]] = None, names: Optional[dict] = None,
                 warn_unknown: bool = True) -> Any:
        model = model or _SECTION_MODELS[section]
        if body is None:
            return None
        if warn_unknown:
            for key in body:
                if key not in model.model_fields:
                    self.warnings.append(f"unknown key '{section}.{key}' ignored")
        checks = _Checks(section, self.warnings, names)
        try:
            return model.model_validate(body, context={"checks": checks})
        except ValidationError as exc:
            self.problems.extend(_problems(exc, model, checks))
            return None

    def reporting(self) -> Optional[ReportingConfig]:
        body = self.mapping(self.doc, "reporting")
        if body is None:
            return None
        for key in body:
            if key not in ("email", "slack") and key not in _DEPRECATED_EMAIL_KEYS:
                self.warnings.append(f"unknown key 'reporting.{key}' ignored")
        if "send_email_on_error" in body:
            self.warnings.append("DEPRECATED: 'reporting.send_email_on_error'; use a "
                                 "'reporting.email' block with 'enabled'")
        if "send_email_on_error" in body and "email" not in body:
            # The deprecated form's own defaults: port 587 with TLS.
            legacy = {key: value for key, value in body.items() if key in _DEPRECATED_EMAIL_KEYS}
            legacy["enabled"] = legacy.pop("send_email_on_error")
            if legacy.get("smtp_port") is None:
                legacy["smtp_port"] = 587
            legacy.setdefault("smtp_use_tls", True)
            email = self.validate("reporting", legacy, EmailConfig,
                                  names={"enabled": "send_email_on_error"}, warn_unknown=False)
        else:
            email = self.validate("reporting.email",
                                  self.mapping(body, "email", prefix="reporting."))
        slack = self.validate("reporting.slack", self.mapping(body, "slack", prefix="reporting."))
        if email is None or slack is None:
            return None
        return ReportingConfig(email=email, slack=slack)

    def secrets(self) -> list[str]:
        """The secret values of the document as written, to mask wherever they turn up."""
        values = [_dig(self.doc, keys) for keys in _SECRET_KEYS]
        values += [_uri_password(uri) for uri in (_dig(self.doc, keys) for keys in _URI_KEYS)
                   if isinstance(uri, str)]
        return [str(v) for v in values if v is not None and not isinstance(v, (Mapping, list))
                and str(v)]

    def error(self) -> ConfigError:
        (key, reason), more = self.problems[0], self.problems[1:]
        if more:
            reason += "; also " + "; ".join(f"'{k}': {r}" for k, r in more)
        return ConfigError(redact(reason, self.secrets()), key=key, path=self.path)

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
