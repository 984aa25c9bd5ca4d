"""The legacy run-record converters: DAQInterface ``.txt`` files → FHiCL text, byte for byte.

Each converter writes what the legacy archiver's converter wrote (lines split with
``str.splitlines``, whitespace as Python's ``str.strip``/``\\s``, as the legacy tool did; the
rules are in each function's docstring and in docs/formats.md). Deviations, where the legacy
tool lost data or wrote FHiCL that no reader accepts:

* ``fhiclize_metadata``: a component list or logfile block still open at the end of the input
  is emitted, as if a blank line had closed it (the legacy tool silently dropped it);
* every converter writes valid FHiCL for any input. Where the legacy rule would write a line
  that is not valid FHiCL, it makes the smallest change that keeps the information (checks in
  :mod:`.repair`): a BuildInfo line of its own is joined to its ``<pkg> commit/version:`` entry;
  a key gets ``_`` for each character a FHiCL name cannot hold; a value that is no valid FHiCL
  string or value is written as a string whose value is the original text; anything else
  becomes a ``#`` comment line holding the input line. Each change is reported through the
  optional ``repairs`` list; valid legacy output is unchanged, byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

from .repair import (
    Repair,
    comment_line_ok,
    comment_text,
    describe_string_repair,
    dquoted_ok,
    fhicl_name,
    fhicl_string,
    include_free,
    is_fhicl_key,
    is_fhicl_name,
    parses,
)

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

# ---------------------------------------------------------------- shared helpers

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


# ---------------------------------------------------------------- output checks: valid FHiCL

# Each key, string, bare value and comment line is checked where it is written; the lines of a
# converter output are independent of each other, so the whole output is valid FHiCL (the property
# tests check it against the project's reader and artdaq_database's C++ reader).

Origin = tuple[tuple[int, str], ...]
"""The input lines (1-based number, text) an output line was made from."""


def _checked_key(key: str, written: str, line: int, repairs: list[Repair], *,
                 top_level: bool = True) -> Optional[str]:
    """``written`` (the name the legacy rule made of ``key``) if it is a valid FHiCL key, else
    the name with ``_`` for each character a name cannot hold; ``None`` if there is no name."""
    if is_fhicl_key(written) if top_level else is_fhicl_name(written):
        return written
    name = fhicl_name(written)
    if name is not None:
        repairs.append(Repair(line, f"key {key!r} is not a FHiCL name; written as {name} "
                                    "(each character a name cannot hold becomes _)"))
    return name


def _repaired_string(text: str, what: str, line: int, repairs: list[Repair],
                     why: str = "not a valid FHiCL string as written") -> Optional[str]:
    """``text`` as a FHiCL string whose value is exactly ``text``, with the repair recorded;
    ``None`` when no FHiCL string can hold it."""
    written = fhicl_string(text)
    if written is not None:
        repairs.append(Repair(line, f"{what}: {why}; {describe_string_repair(written)}"))
    return written


def _checked_string(content: str, text: str, what: str, line: int,
                    repairs: list[Repair]) -> Optional[str]:
    """``"content"`` (the legacy way of writing ``text``) when it is a valid FHiCL string."""
    if dquoted_ok(content):
        return f'"{content}"'
    return _repaired_string(text, what, line, repairs)


def _checked_quote_value(value: str, what: str, line: int,
                         repairs: list[Repair]) -> Optional[str]:
    """``_quote_value(value)`` when it is valid FHiCL, else the value as a FHiCL string."""
    written = _quote_value(value)
    value = value.strip()
    if written != value:  # quoted by the legacy rule: " escaped, \ not
        return _checked_string(written[1:-1], value, what, line, repairs)
    if value.startswith('"') and value.endswith('"'):  # kept as the input quoted it
        if len(value) >= 2 and dquoted_ok(value[1:-1]):
            return value
        return _repaired_string(value[1:-1] if len(value) >= 2 else value, what, line, repairs)
    if value.startswith("[") and value.endswith("]"):  # kept as a FHiCL sequence
        if parses(f"k: {value}\n"):
            return value
        return _repaired_string(value, what, line, repairs, "not a valid FHiCL sequence")
    return value  # a number: digits and at most one dot are always valid


def _checked_bare(value: str, what: str, line: int, repairs: list[Repair]) -> Optional[str]:
    """``value`` written bare when it is a valid FHiCL value, else as a FHiCL string."""
    if _is_numeric(value) or parses(f"k: {value}\n"):
        return value
    return _repaired_string(value, what, line, repairs, "not a valid FHiCL value")


def _checked_array(items: list[Optional[str]]) -> Optional[str]:
    """``[…]`` of items already written as FHiCL strings; ``None`` if one could not be."""
    if any(item is None for item in items):
        return None
    return "[" + ", ".join(items) + "]"  # type: ignore[arg-type]


def _comment(origin: Origin, repairs: list[Repair], *, indent: str = "") -> str:
    """The input lines of ``origin`` as ``# `` comment lines: the last resort, for what no key,
    string or value can hold."""
    if len(origin) == 1:
        repairs.append(Repair(origin[0][0], "cannot be written as valid FHiCL; kept as a "
                                            "comment line holding the input line"))
    elif origin:
        repairs.append(Repair(origin[0][0], "cannot be written as valid FHiCL; kept as "
                                            f"{len(origin)} comment lines holding input lines "
                                            f"{origin[0][0]} to {origin[-1][0]}"))
    return "\n".join(indent + comment_text(text) for _, text in origin)


def _pair(key: Optional[str], value: Optional[str], origin: Origin, repairs: list[Repair], *,
          indent: str = "") -> str:
    """``key: value``, or the input line as a comment when either could not be written (or the
    value, written bare, holds an ``#include`` that artdaq_database would rewrite)."""
    if key is None or value is None or not include_free(value):
        return _comment(origin, repairs, indent=indent)
    return f"{indent}{key}: {value}"


def _sink(repairs: Optional[list[Repair]]) -> list[Repair]:
    return repairs if repairs is not None else []


# ---------------------------------------------------------------- metadata.txt

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
_COMMIT_VERSION = "commit/version"


def _metadata_name(key: str) -> str:
    """The FHiCL key the legacy rule writes for a metadata.txt key: ``Config name``,
    ``DAQInterface start time``, ``DAQInterface stop time``, ``Total events`` (prefixes) lower-cased
    with each space → ``_``; a key holding ``commit/version``: runs of blanks and ``-`` → ``_``,
    then ``commit/version`` → ``commit_or_version``; ``pmt logfile`` → ``pmt_logfiles_wildcard``;
    otherwise runs of blanks and ``-`` → ``_``."""
    if _TIMES_AND_TOTALS.match(key):
        return key.lower().replace(" ", "_")
    if _COMMIT_VERSION in key:
        return _DASH_SPACE_RUNS.sub("_", key).replace(_COMMIT_VERSION, "commit_or_version")
    if key == "pmt logfile":
        return "pmt_logfiles_wildcard"
    if key == "process management method":
        return "process_management_method"
    return _DASH_SPACE_RUNS.sub("_", key)


def _metadata_pair(key: str, value: str, origin: Origin, repairs: list[Repair]) -> str:
    """The output line of an ordinary ``key: value`` pair of metadata.txt: a commit/version
    value in double quotes with each ``"`` turned into a blank, any other value as
    ``_quote_value`` writes it."""
    line = origin[0][0]
    name = _checked_key(key, _metadata_name(key), line, repairs)
    what = f"value of {key!r}"
    if _COMMIT_VERSION in key and not _TIMES_AND_TOTALS.match(key):
        unquoted = value.replace('"', " ")
        written = _checked_string(unquoted, unquoted, what, line, repairs)
    else:
        written = _checked_quote_value(value, what, line, repairs)
    return _pair(name, written, origin, repairs)


def _continues_commit_entry(line: str, stripped: str) -> bool:
    """Whether ``line``, right after a ``<pkg> commit/version:`` entry, is that entry's BuildInfo
    fields on a line of their own (DAQInterface writes them after the commit information, which
    may end in a newline): indented, and as its own entry it would be no valid FHiCL key.
    A continuation without a colon is dropped as the legacy tool did (its output stays valid)."""
    if not line[:1].isspace() or not stripped or stripped.startswith("#"):
        return False
    pair = _split_at_colon(stripped)
    if pair is None or _COMPONENT.match(pair[0]) or pair[0] in _LOGFILE_BLOCKS:
        return False
    return not is_fhicl_key(_metadata_name(pair[0]))


class _MetadataLists:
    """The component list and the logfile blocks of metadata.txt: items written once, as FHiCL
    strings, when read; lists are never reset (a repeated group re-emits earlier items)."""

    def __init__(self, repairs: list[Repair]):
        self.repairs = repairs
        self.items: dict[str, list[str]] = {"components": []}
        self.items.update({kind: [] for kind in _LOGFILE_BLOCKS.values()})

    def add(self, kind: str, text: str, number: int, line: str, out: list[str]) -> None:
        """An entry; one that no FHiCL string can hold becomes a comment line where it stands."""
        written = _checked_string(text, text, f"an entry of {kind}", number, self.repairs)
        if written is None:
            out.append(_comment(((number, line),), self.repairs))
        else:
            self.items[kind].append(written)

    def line(self, kind: str, *, blank_line: bool) -> str:
        prefix = "\n" if blank_line else ""
        return f"{prefix}{kind}: [" + ", ".join(self.items[kind]) + "]"


def fhiclize_metadata(text: str, *, repairs: Optional[list[Repair]] = None) -> str:
    """metadata.txt → metadata.fcl, line by line: ``#`` lines as they are; a blank line closes
    the open logfile block (written after an empty line) or else the open component list;
    inside a block each line gives its first word; ``Component #<n>:`` values collect into
    ``components``; ``<kind> logfiles:`` opens a block; lines without a colon are dropped;
    other lines are ``key: value`` pairs. Blocks still open at the end are emitted as if a blank
    line had closed them (the legacy tool dropped all but the dispatcher block)."""
    repairs = _sink(repairs)
    out: list[str] = []
    lists = _MetadataLists(repairs)
    components_open = False
    open_block: str | None = None  # at most one logfile block is ever open
    pending: Optional[tuple[int, str]] = None  # a commit/version entry that may continue

    def flush_pending() -> None:
        nonlocal pending
        if pending is not None:
            number, line = pending
            key, value = _split_at_colon(line.strip())  # type: ignore[misc]
            out.append(_metadata_pair(key, value, ((number, line),), repairs))
            pending = None

    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if pending is not None:
            if _continues_commit_entry(line, stripped):
                first, first_line = pending
                joined = f"{first_line.rstrip()} {stripped}"
                key, value = _split_at_colon(joined.strip())  # type: ignore[misc]
                repairs.append(Repair(number, f"joined to the {key!r} entry of line {first} "
                                              "with one space (BuildInfo fields on a line of "
                                              "their own)"))
                out.append(_metadata_pair(key, value, ((first, first_line), (number, line)),
                                          repairs))
                pending = None
                continue
            flush_pending()
        if stripped.startswith("#"):
            origin = ((number, line),)
            out.append(line if comment_line_ok(line) else
                       _comment(origin, repairs))  # a malformed #include directive
            continue
        if not stripped:
            if open_block is not None:
                out.append(lists.line(open_block, blank_line=True))
                open_block = None
            elif components_open:
                out.append(lists.line("components", blank_line=False))
                components_open = False
            continue
        if open_block is not None:
            lists.add(open_block, stripped.split()[0], number, line, out)
            continue
        if components_open and not _COMPONENT.match(stripped):
            out.append(lists.line("components", blank_line=False))
            components_open = False
        pair = _split_at_colon(stripped)
        if pair is None:
            continue
        key, value = pair
        # The legacy rule order reduces to this: no key can match two of these three tests.
        if _COMPONENT.match(key):
            lists.add("components", value, number, line, out)
            components_open = True
        elif key in _LOGFILE_BLOCKS:
            open_block = _LOGFILE_BLOCKS[key]
        elif _COMMIT_VERSION in key and not _TIMES_AND_TOTALS.match(key):
            pending = (number, line)
        else:
            out.append(_metadata_pair(key, value, ((number, line),), repairs))
    flush_pending()

    # The legacy tool emitted only an open dispatcher block here and dropped the rest.
    if open_block is not None:
        out.append(lists.line(open_block, blank_line=True))
    if components_open:
        out.append(lists.line("components", blank_line=False))
    return _join_lines(out)


# ---------------------------------------------------------------- boot.txt

_NOT_SET = "not set"  # the legacy sentinel: a field whose value is literally "not set" counts as unset
_PROCESS_NAMES = ("BoardReader", "EventBuilder", "DataLogger", "Dispatcher", "RoutingManager")
_PROCESS_FIELDS = ("host", "port", "label", "subsystem")
_SUBSYSTEM_FIELDS = (("Subsystem_id", "id"), ("Subsystem_source", "source"),
                     ("Subsystem_destination", "destination"))


@dataclass
class _BootBlock:
    """A process or subsystem of boot.txt: its fields (``not set`` when unset) and the input
    line each field came from."""

    values: dict[str, str]
    origins: dict[str, tuple[int, str]] = field(default_factory=dict)


def _new_process() -> _BootBlock:
    return _BootBlock(dict.fromkeys(("name", "label", "host", "port", "subsystem"), _NOT_SET))


def _new_subsystem() -> _BootBlock:
    return _BootBlock(dict.fromkeys(("id", "source", "destination"), _NOT_SET))


def _subsystem_field(key: str) -> str | None:
    for marker, name in _SUBSYSTEM_FIELDS:
        if marker in key:
            return name
    return None


def _process_field(key: str) -> tuple[str, str] | None:
    for name in _PROCESS_NAMES:
        for process_field in _PROCESS_FIELDS:
            if f"{name}_{process_field}" in key:
                return name, process_field
    return None


class _BootState:
    """The current process and subsystem of boot.txt and what has been finalised so far.

    As in the legacy tool, a block is only finalised (and its fields reset) once it has a label
    (processes) or an id (subsystems); fields of an unlabelled block carry over to the next one.
    """

    def __init__(self, repairs: list[Repair]) -> None:
        self.repairs = repairs
        self.pairs: list[str] = []
        self.processes: dict[str, _BootBlock] = {}
        self.subsystems: dict[str, _BootBlock] = {}
        self.process = _new_process()
        self.subsystem = _new_subsystem()

    def finalise(self) -> None:
        if self.process.values["label"] != _NOT_SET:
            self.processes[self.process.values["label"]] = self.process
            self.process = _new_process()
        if self.subsystem.values["id"] != _NOT_SET:
            self.subsystems[self.subsystem.values["id"]] = self.subsystem
            self.subsystem = _new_subsystem()

    def add(self, key: str, written_key: str, value: str, number: int, line: str) -> None:
        found_field = _subsystem_field(written_key)
        if found_field is not None:
            self.subsystem.values[found_field] = value
            self.subsystem.origins[found_field] = (number, line)
            return
        found = _process_field(written_key)
        if found is not None:
            self.process.values["name"] = found[0]
            self.process.values[found[1]] = value
            self.process.origins[found[1]] = (number, line)
            return
        name = _checked_key(key, written_key, number, self.repairs)
        written = _checked_quote_value(value, f"value of {key!r}", number, self.repairs)
        self.pairs.append(_pair(name, written, ((number, line),), self.repairs))


def _boot_objects(objects: list[list[str]]) -> list[str]:
    """One ``{`` … ``},`` block per object, the last one closed by ``}``."""
    lines: list[str] = []
    for index, body in enumerate(objects):
        lines.append("{")
        lines.extend(body)
        lines.append("}," if index < len(objects) - 1 else "}")
    return lines


def _boot_field(block: _BootBlock, name: str, repairs: list[Repair], *,
                bare: bool = False) -> str:
    """``name: "<value>"`` (``name: <value>`` when ``bare``) of an object, checked."""
    value = block.values[name]
    origin = (block.origins[name],) if name in block.origins else ()
    number = origin[0][0] if origin else 0
    what = f"{name} of a boot.txt block"
    if bare:
        written = _checked_bare(value, what, number, repairs)
    else:
        written = _checked_string(value, value, what, number, repairs)
    if written is None:
        return _comment(origin, repairs)
    return f"{name}: {written}"


def _subsystem_body(subsystem: _BootBlock, repairs: list[Repair]) -> list[str]:
    body = [_boot_field(subsystem, "id", repairs)]
    for name in ("source", "destination"):
        if subsystem.values[name] != _NOT_SET:
            body.append(_boot_field(subsystem, name, repairs))
    return body


def _process_body(process: _BootBlock, repairs: list[Repair]) -> list[str]:
    body = [f'name: "{process.values["name"]}"', _boot_field(process, "label", repairs),
            _boot_field(process, "host", repairs)]
    if process.values["port"] != _NOT_SET:
        body.append(_boot_field(process, "port", repairs, bare=True))
    if process.values["subsystem"] != _NOT_SET:
        body.append(_boot_field(process, "subsystem", repairs))
    return body


def fhiclize_boot(text: str, *, repairs: Optional[list[Repair]] = None) -> str:
    """boot.txt → boot.fcl: plain pairs, ``subsystem_settings``, ``artdaq_process_settings``.

    ``#`` lines are skipped, a blank line finalises the current process and subsystem; a key
    holding ``Subsystem_id``/``_source``/``_destination`` sets a subsystem field, one holding
    ``<Process>_host``/``_port``/``_label``/``_subsystem`` a process field; any other pair is
    written in input order. Objects are written one item per line, the port bare."""
    repairs = _sink(repairs)
    state = _BootState(repairs)
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("#"):
            continue
        if not stripped:
            state.finalise()
            continue
        pair = _split_at_colon(stripped)
        if pair is None:
            continue
        state.add(pair[0], _WHITESPACE_RUNS.sub("_", pair[0]), pair[1], number, line)
    state.finalise()

    out = list(state.pairs)
    if state.subsystems:
        out.append("\nsubsystem_settings: [")
        out.extend(_boot_objects([_subsystem_body(s, repairs)
                                  for s in state.subsystems.values()]))
        out.append("]")
    out.append("\nartdaq_process_settings: [")
    out.extend(_boot_objects([_process_body(p, repairs) for p in state.processes.values()]))
    out.append("]")
    return _join_lines(out)


# ---------------------------------------------------------------- known_boardreaders_list.txt

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


def _boardreader_value(token: str, what: str, number: int,
                       repairs: list[Repair]) -> tuple[Optional[str], bool]:
    """(the token as a FHiCL string, whether the input quoted it)."""
    if token.startswith('"') and token.endswith('"'):
        if len(token) >= 2 and dquoted_ok(token[1:-1]):
            return token, True
        inner = token[1:-1] if len(token) >= 2 else token
        return _repaired_string(inner, what, number, repairs), True
    return _checked_string(token, token, what, number, repairs), False


def fhiclize_known_boardreaders_list(text: str, *,
                                     repairs: Optional[list[Repair]] = None) -> str:
    """known_boardreaders_list.txt → ``label: ["host", "port", …]`` lines.

    Blank and ``#`` lines are skipped, lines of fewer than two tokens dropped. Each value is
    wrapped in quotes unless the input quoted it; if any was, the list closes with `` ]``."""
    repairs = _sink(repairs)
    out: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        tokens = _boardreader_tokens(stripped)
        if len(tokens) < 2:
            continue
        values = []
        any_quoted = False
        for token in tokens[1:]:
            written, quoted = _boardreader_value(token, f"a value of {tokens[0]!r}", number,
                                                 repairs)
            values.append(written)
            any_quoted = any_quoted or quoted
        key = _checked_key(tokens[0], tokens[0], number, repairs)
        closing = " ]" if any_quoted else "]"
        array = None if None in values else "[" + ", ".join(values) + closing  # type: ignore
        out.append(_pair(key, array, ((number, line),), repairs))
    return _join_lines(out)


# ---------------------------------------------------------------- settings.txt

def _settings_elements(value: str) -> list[str]:
    """``[a, "b-c", '']`` → ``a``, ``b_c``, ``''``: one pair of quotes removed, ``-`` → ``_``."""
    elements = []
    for element in value[1:-1].split(","):
        element = element.strip()
        if not element:
            continue
        if (element.startswith('"') and element.endswith('"')) or \
                (element.startswith("'") and element.endswith("'")):
            element = element[1:-1]
        elements.append(element.replace("-", "_"))
    return elements


def _settings_list(elements: list[str]) -> str:
    """Elements bare, ``[ e1, e2 ]``; an empty list is ``[  ]``."""
    return "[ " + ", ".join(elements) + " ]"


# A bare list element that is valid FHiCL without asking the reader: a name or a plain number.
_PLAIN_ELEMENT = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+(?:\.[0-9]+)?)\Z")


def _checked_settings_list(value: str, what: str, number: int,
                           repairs: list[Repair]) -> Optional[str]:
    """The legacy list when it is valid FHiCL; else each element that is no valid FHiCL value
    written as a string (its value the element as the legacy rule made it)."""
    elements = _settings_elements(value)
    written = _settings_list(elements)
    if all(_PLAIN_ELEMENT.match(element) for element in elements) or parses(f"k: {written}\n"):
        return written
    checked: list[str] = []
    for element in elements:
        if element and parses(f"k: [ {element} ]\n"):
            checked.append(element)
            continue
        quoted = _repaired_string(element, what, number, repairs,
                                  "a list element that is no valid FHiCL value")
        if quoted is None:
            return None
        checked.append(quoted)
    return _settings_list(checked)


def _settings_value(value: str, what: str, number: int,
                    repairs: list[Repair]) -> Optional[str]:
    if value.startswith("["):
        return _checked_settings_list(value, what, number, repairs)
    if _is_numeric(value):
        return value
    if value.lower() in ("true", "false"):
        return value.lower()
    return _checked_quote_value(value, what, number, repairs)


def fhiclize_settings(text: str, *, repairs: Optional[list[Repair]] = None) -> str:
    """settings.txt → settings.fcl: ``key: value`` for each line with a colon (blank and ``#``
    lines skipped). Runs of blanks, ``-``, ``(``, ``)``, ``/``, ``#``, ``.`` in the key become
    ``_``; a ``[…]`` value is a list of bare elements (one pair of quotes removed, ``-`` → ``_``,
    empty ones dropped), a number stays bare, ``true``/``false`` in any case lower-cased, anything
    else as ``_quote_value`` writes it."""
    repairs = _sink(repairs)
    out: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pair = _split_at_colon(stripped)
        if pair is None:
            continue
        key, value = pair
        name = _checked_key(key, _SETTINGS_KEY_RUNS.sub("_", key), number, repairs)
        written = _settings_value(value, f"value of {key!r}", number, repairs)
        out.append(_pair(name, written, ((number, line),), repairs))
    return _join_lines(out)


# ---------------------------------------------------------------- setup.txt

def fhiclize_setup(text: str, *, repairs: Optional[list[Repair]] = None) -> str:
    """setup.txt → ``setup_script: "<escaped content>"`` with no trailing newline: non-ASCII
    characters become ``.``, then ``\\`` → ``\\\\``, ``"`` → ``\\"``, newline → ``\\n``.

    The legacy escaping fails only for content ending in a backslash (written in single quotes,
    newlines as they are) or holding control characters (the lines become comments)."""
    repairs = _sink(repairs)
    cleaned = _clean(text)
    escaped = cleaned.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    written = _checked_string(escaped, cleaned, "the content of setup.txt", 0, repairs)
    if written is None:
        return _comment(tuple(enumerate(cleaned.splitlines(), 1)), repairs)
    return f"setup_script: {written}"


# ---------------------------------------------------------------- environment.txt

_EXPORT = re.compile(r"^export\s+([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")


def fhiclize_environment(text: str, *, repairs: Optional[list[Repair]] = None) -> str:
    """environment.txt → ``NAME: "value"`` for every ``export NAME=value`` line: the value
    stripped of blanks and of leading/trailing quotes, non-ASCII characters → ``.``, ``"``
    escaped."""
    repairs = _sink(repairs)
    out: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _EXPORT.match(stripped)
        if match is None:
            continue
        name, value = match.groups()
        value = _clean(value.strip().strip("'\""))
        written = _checked_string(value.replace('"', '\\"'), value, f"value of {name}", number,
                                  repairs)
        out.append(_pair(name, written, ((number, line),), repairs))
    return _join_lines(out)


# ---------------------------------------------------------------- ranks.txt

def fhiclize_ranks(text: str, *, repairs: Optional[list[Repair]] = None) -> str:
    """ranks.txt → a ``ranks: { header: […] rank<N>: […] }`` table: the first non-blank,
    non-``#`` line is the header, each later row of five or more columns is ``rank<fifth
    column>``, every column quoted."""
    repairs = _sink(repairs)
    rows = [(number, line, line.split()) for number, line in enumerate(text.splitlines(), 1)]
    rows = [row for row in rows if row[2] and not row[2][0].startswith("#")]
    if not rows:
        return ""

    def row(key: str, number: int, line: str, columns: list[str]) -> str:
        what = f"a column of {key}"
        items = _checked_array([_checked_string(c, c, what, number, repairs) for c in columns])
        name = _checked_key(key, key, number, repairs, top_level=False)
        return _pair(name, items, ((number, line),), repairs, indent="  ")

    out = ["ranks: {", row("header", *rows[0])]
    for number, line, columns in rows[1:]:
        if len(columns) >= 5:
            out.append(row(f"rank{columns[4]}", number, line, columns))
    out.append("}")
    return _join_lines(out)


CONVERTERS: dict[str, Callable[..., str]] = {
    "metadata": fhiclize_metadata,
    "boot": fhiclize_boot,
    "known_boardreaders_list": fhiclize_known_boardreaders_list,
    "settings": fhiclize_settings,
    "setup": fhiclize_setup,
    "environment": fhiclize_environment,
    "ranks": fhiclize_ranks,
}
"""Converter name (the ``.txt`` stem, as ``fhiclize_generate`` spells it) → converter: text in,
FHiCL text out; keyword ``repairs`` (a list) receives each repair made to write valid FHiCL."""
