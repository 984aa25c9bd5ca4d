"""The legacy run-record converters: DAQInterface ``.txt`` files → FHiCL text, byte for byte.

Each converter reproduces legacy_archiver.md §5.3–§5.10 (lines split with ``str.splitlines`` and
whitespace as Python's ``str.strip``/``\\s``, as the legacy tool did); the only deviations are the
two Decision-7 cases in ``fhiclize_metadata``, where the legacy tool silently dropped data.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable

__all__ = [
    "CONVERTERS",
    "fhiclize_boot",
    "fhiclize_environment",
    "fhiclize_known_boardreaders_list",
    "fhiclize_metadata",
    "fhiclize_ranks",
    "fhiclize_settings",
    "fhiclize_setup",
]

# ---------------------------------------------------------------- shared helpers (§5.3)

_NUMERIC = re.compile(r"^[0-9.]+$")
_DASH_SPACE_RUNS = re.compile(r"[\s\-]+")
_WHITESPACE_RUNS = re.compile(r"\s+")
_SETTINGS_KEY_RUNS = re.compile(r"[\s\-()/#.]+")


def _is_numeric(value: str) -> bool:
    """Non-empty, only ASCII digits and dots, at most one dot (so ``.`` and ``1.`` count)."""
    return bool(value) and _NUMERIC.match(value) is not None and value.count(".") <= 1


def _quote_value(value: str) -> str:
    """Strip; keep ``"…"``, ``[…]`` and numbers as they are; otherwise escape ``"`` and quote."""
    value = value.strip()
    if value.startswith('"') and value.endswith('"'):
        return value
    if value.startswith("[") and value.endswith("]"):
        return value
    if _is_numeric(value):
        return value
    return '"' + value.replace('"', '\\"') + '"'


def _array(items: Iterable[str]) -> str:
    """``["a", "b"]`` with the items wrapped in quotes unescaped; ``[]`` when empty."""
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


def _clean(text: str) -> str:
    """Every character with code >= 128 becomes ``.``."""
    if text.isascii():
        return text
    return "".join(c if ord(c) < 128 else "." for c in text)


def _join_lines(lines: list[str]) -> str:
    """Lines joined with newlines plus one final newline; the empty string when there are none."""
    return "\n".join(lines) + "\n" if lines else ""


def _split_at_colon(text: str) -> tuple[str, str] | None:
    """Key before the first ``:`` and value after it, both stripped; ``None`` without a colon."""
    colon = text.find(":")
    if colon == -1:
        return None
    return text[:colon].strip(), text[colon + 1:].strip()


# ---------------------------------------------------------------- metadata.txt (§5.4)

_LOGFILE_BLOCKS = {
    "process manager logfiles": "process_manager_logfiles",
    "boardreader logfiles": "boardreader_logfiles",
    "eventbuilder logfiles": "eventbuilder_logfiles",
    "routingmanager logfiles": "routingmanager_logfiles",
    "datalogger logfiles": "datalogger_logfiles",
    "dispatcher logfiles": "dispatcher_logfiles",
}
_COMPONENT = re.compile(r"Component #\d+")
_TIMES_AND_TOTALS = re.compile(
    r"Config name|DAQInterface start time|DAQInterface stop time|Total events")


def _metadata_pair(key: str, value: str) -> str:
    """The output line of an ordinary ``key: value`` pair of metadata.txt (§5.4 step 5)."""
    if _TIMES_AND_TOTALS.match(key):
        return f"{key.lower().replace(' ', '_')}: {_quote_value(value)}"
    if "commit/version" in key:
        name = _DASH_SPACE_RUNS.sub("_", key).replace("commit/version", "commit_or_version")
        unquoted = value.replace('"', " ")
        return f'{name}: "{unquoted}"'
    if key == "pmt logfile":
        return f"pmt_logfiles_wildcard: {_quote_value(value)}"
    if key == "process management method":
        return f"process_management_method: {_quote_value(value)}"
    return f"{_DASH_SPACE_RUNS.sub('_', key)}: {_quote_value(value)}"


def fhiclize_metadata(text: str) -> str:
    """metadata.txt → metadata.fcl (§5.4), emitting blocks still open at end of input (Decision 7)."""
    out: list[str] = []
    components: list[str] = []
    logfiles: dict[str, list[str]] = {kind: [] for kind in _LOGFILE_BLOCKS.values()}
    components_open = False
    open_block: str | None = None  # at most one logfile block is ever open

    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            out.append(line)
            continue
        if not stripped:
            if open_block is not None:
                out.append(f"\n{open_block}: {_array(logfiles[open_block])}")
                open_block = None
            elif components_open:
                out.append(f"components: {_array(components)}")
                components_open = False
            continue
        if open_block is not None:
            logfiles[open_block].append(stripped.split()[0])
            continue
        if components_open and not _COMPONENT.match(stripped):
            out.append(f"components: {_array(components)}")
            components_open = False
        pair = _split_at_colon(stripped)
        if pair is None:
            continue
        key, value = pair
        # The rule order of §5.4 reduces to this: no key can match two of these three tests.
        if _COMPONENT.match(key):
            components.append(value)
            components_open = True
        elif key in _LOGFILE_BLOCKS:
            open_block = _LOGFILE_BLOCKS[key]
        else:
            out.append(_metadata_pair(key, value))

    # Decision 7: the legacy tool emitted only an open dispatcher block here and dropped the rest.
    if open_block is not None:
        out.append(f"\n{open_block}: {_array(logfiles[open_block])}")
    if components_open:
        out.append(f"components: {_array(components)}")
    return _join_lines(out)


# ---------------------------------------------------------------- boot.txt (§5.5)

_NOT_SET = "not set"  # the legacy sentinel: a field whose value is literally "not set" counts as unset
_PROCESS_NAMES = ("BoardReader", "EventBuilder", "DataLogger", "Dispatcher", "RoutingManager")
_PROCESS_FIELDS = ("host", "port", "label", "subsystem")
_SUBSYSTEM_FIELDS = (("Subsystem_id", "id"), ("Subsystem_source", "source"),
                     ("Subsystem_destination", "destination"))


def _new_process() -> dict[str, str]:
    return dict.fromkeys(("name", "label", "host", "port", "subsystem"), _NOT_SET)


def _new_subsystem() -> dict[str, str]:
    return dict.fromkeys(("id", "source", "destination"), _NOT_SET)


def _subsystem_field(key: str) -> str | None:
    for marker, field in _SUBSYSTEM_FIELDS:
        if marker in key:
            return field
    return None


def _process_field(key: str) -> tuple[str, str] | None:
    for name in _PROCESS_NAMES:
        for field in _PROCESS_FIELDS:
            if f"{name}_{field}" in key:
                return name, field
    return None


class _BootState:
    """The current process and subsystem of boot.txt and what has been finalised so far.

    As in the legacy tool, a block is only finalised (and its fields reset) once it has a label
    (processes) or an id (subsystems); fields of an unlabelled block carry over to the next one.
    """

    def __init__(self) -> None:
        self.pairs: list[str] = []
        self.processes: dict[str, dict[str, str]] = {}
        self.subsystems: dict[str, dict[str, str]] = {}
        self.process = _new_process()
        self.subsystem = _new_subsystem()

    def finalise(self) -> None:
        if self.process["label"] != _NOT_SET:
            self.processes[self.process["label"]] = self.process
            self.process = _new_process()
        if self.subsystem["id"] != _NOT_SET:
            self.subsystems[self.subsystem["id"]] = self.subsystem
            self.subsystem = _new_subsystem()

    def add(self, key: str, value: str) -> None:
        field = _subsystem_field(key)
        if field is not None:
            self.subsystem[field] = value
            return
        found = _process_field(key)
        if found is not None:
            self.process["name"] = found[0]
            self.process[found[1]] = value
            return
        self.pairs.append(f"{key}: {_quote_value(value)}")


def _boot_objects(objects: list[list[str]]) -> list[str]:
    """One ``{`` … ``},`` block per object, the last one closed by ``}``."""
    lines: list[str] = []
    for index, body in enumerate(objects):
        lines.append("{")
        lines.extend(body)
        lines.append("}," if index < len(objects) - 1 else "}")
    return lines


def _subsystem_body(subsystem: dict[str, str]) -> list[str]:
    body = [f'id: "{subsystem["id"]}"']
    if subsystem["source"] != _NOT_SET:
        body.append(f'source: "{subsystem["source"]}"')
    if subsystem["destination"] != _NOT_SET:
        body.append(f'destination: "{subsystem["destination"]}"')
    return body


def _process_body(process: dict[str, str]) -> list[str]:
    body = [f'name: "{process["name"]}"', f'label: "{process["label"]}"',
            f'host: "{process["host"]}"']
    if process["port"] != _NOT_SET:
        body.append(f"port: {process['port']}")
    if process["subsystem"] != _NOT_SET:
        body.append(f'subsystem: "{process["subsystem"]}"')
    return body


def fhiclize_boot(text: str) -> str:
    """boot.txt → boot.fcl (§5.5): plain pairs, ``subsystem_settings``, ``artdaq_process_settings``."""
    state = _BootState()
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            continue
        if not stripped:
            state.finalise()
            continue
        pair = _split_at_colon(stripped)
        if pair is None:
            continue
        state.add(_WHITESPACE_RUNS.sub("_", pair[0]), pair[1])
    state.finalise()

    out = list(state.pairs)
    if state.subsystems:
        out.append("\nsubsystem_settings: [")
        out.extend(_boot_objects([_subsystem_body(s) for s in state.subsystems.values()]))
        out.append("]")
    out.append("\nartdaq_process_settings: [")
    out.extend(_boot_objects([_process_body(p) for p in state.processes.values()]))
    out.append("]")
    return _join_lines(out)


# ---------------------------------------------------------------- known_boardreaders_list.txt (§5.6)

def _boardreader_tokens(line: str) -> list[str]:
    """Whitespace-separated tokens; a ``"`` opens a token that the next ``"`` closes (quotes kept)."""
    tokens: list[str] = []
    current: list[str] = []
    in_quote = False
    for char in line:
        if char == '"':
            current.append(char)
            if in_quote:
                tokens.append("".join(current))
                current = []
            in_quote = not in_quote
        elif char.isspace() and not in_quote:
            if current:
                tokens.append("".join(current))
                current = []
        else:
            current.append(char)
    if current:
        tokens.append("".join(current))
    return tokens


def fhiclize_known_boardreaders_list(text: str) -> str:
    """known_boardreaders_list.txt → ``label: ["host", "port", …]`` lines (§5.6)."""
    out: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        tokens = _boardreader_tokens(stripped)
        if len(tokens) < 2:
            continue
        values = []
        any_quoted = False
        for token in tokens[1:]:
            if token.startswith('"') and token.endswith('"'):
                values.append(token)
                any_quoted = True
            else:
                values.append(f'"{token}"')
        closing = " ]" if any_quoted else "]"
        out.append(f"{tokens[0]}: [" + ", ".join(values) + closing)
    return _join_lines(out)


# ---------------------------------------------------------------- settings.txt (§5.7)

def _settings_list(value: str) -> str:
    """``[a, "b-c", '']`` → ``[ a, b_c,  ]``: elements bare, one pair of quotes removed, ``-`` → ``_``."""
    elements = []
    for element in value[1:-1].split(","):
        element = element.strip()
        if not element:
            continue
        if (element.startswith('"') and element.endswith('"')) or \
                (element.startswith("'") and element.endswith("'")):
            element = element[1:-1]
        elements.append(element.replace("-", "_"))
    return "[ " + ", ".join(elements) + " ]"


def _settings_value(value: str) -> str:
    if value.startswith("["):
        return _settings_list(value)
    if _is_numeric(value):
        return value
    if value.lower() in ("true", "false"):
        return value.lower()
    return _quote_value(value)


def fhiclize_settings(text: str) -> str:
    """settings.txt → settings.fcl (§5.7)."""
    out: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pair = _split_at_colon(stripped)
        if pair is None:
            continue
        key, value = pair
        out.append(f"{_SETTINGS_KEY_RUNS.sub('_', key)}: {_settings_value(value)}")
    return _join_lines(out)


# ---------------------------------------------------------------- setup.txt (§5.8)

def fhiclize_setup(text: str) -> str:
    """setup.txt → ``setup_script: "<escaped content>"`` with no trailing newline (§5.8)."""
    escaped = _clean(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'setup_script: "{escaped}"'


# ---------------------------------------------------------------- environment.txt (§5.9)

_EXPORT = re.compile(r"^export\s+([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")


def fhiclize_environment(text: str) -> str:
    """environment.txt → ``NAME: "value"`` for every ``export NAME=value`` line (§5.9)."""
    out: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _EXPORT.match(stripped)
        if match is None:
            continue
        name, value = match.groups()
        value = _clean(value.strip().strip("'\"")).replace('"', '\\"')
        out.append(f'{name}: "{value}"')
    return _join_lines(out)


# ---------------------------------------------------------------- ranks.txt (§5.10)

def fhiclize_ranks(text: str) -> str:
    """ranks.txt → a ``ranks: { header: […] rank<N>: […] }`` table (§5.10)."""
    rows = [line.split() for line in text.splitlines()]
    rows = [row for row in rows if row and not row[0].startswith("#")]
    if not rows:
        return ""
    out = ["ranks: {", f"  header: {_array(rows[0])}"]
    for row in rows[1:]:
        if len(row) >= 5:
            out.append(f"  rank{row[4]}: {_array(row)}")
    out.append("}")
    return _join_lines(out)


CONVERTERS: dict[str, Callable[[str], str]] = {
    "metadata": fhiclize_metadata,
    "boot": fhiclize_boot,
    "known_boardreaders_list": fhiclize_known_boardreaders_list,
    "settings": fhiclize_settings,
    "setup": fhiclize_setup,
    "environment": fhiclize_environment,
    "ranks": fhiclize_ranks,
}
"""Converter name (the ``.txt`` stem, as ``fhiclize_generate`` spells it) → converter."""
