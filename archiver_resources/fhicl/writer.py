"""The FHiCL writer: FHiCL text from an artdaq_database data tree and its metadata tree, byte for
byte what artdaq_database's ``FhiclWriter`` (``json2fcldb`` + the Karma grammar of
``fhicl_writer.h``) exports. docs/formats.md §5.4 states the layout.

Layout, in short: every item is ``<comment>⏎<key>: <value>`` and, for everything but tables,
`` <annotation>⏎`` after the value (so an uncommented key has a blank line above it and every
leaf ends with a blank); a table is ``{⏎<items>⏎}``; a sequence ``[a, b]`` with the annotation of a
nested sequence after it; quoting comes from the metadata type; a prolog is wrapped in
``BEGIN_PROLOG⏎…⏎END_PROLOG⏎``; include keys become `` ⏎#include "file" ⏎``.

Where the C++ gives up (a record without metadata for a key, an unknown type, a value whose JSON
type does not match its metadata), this writer still writes the value, inferring what is missing,
so a record is never lost on export; the C++ output is matched exactly for every record the C++
reader produces. The project's own extension keys (``fhicl_table_splice_<n>``) are written back as
``@table::name`` items.
"""

from __future__ import annotations

import re

from archiver_resources.errors import ArchiverError
from archiver_resources.fhicl.lexer import INCLUDE_KEY_PREFIX
from archiver_resources.fhicl.parser import BEFORE_PROLOG_SUFFIX, MAX_DEPTH, TABLE_SPLICE_PREFIX
from archiver_resources.fhicl.tables import MultiTable

_INCLUDE_NAME = "fhicl_pound_include"   # artdaq_database compares this prefix (no trailing _)
_OUT_INCLUDE = re.compile(r"#include[ \t\n\v\f\r]*:[^\"]*")
_BEFORE_PROLOG = re.compile(re.escape(INCLUDE_KEY_PREFIX) + "[0-9]+"
                            + re.escape(BEFORE_PROLOG_SUFFIX) + r"\Z")
_SPLICE_KEY = re.compile(re.escape(TABLE_SPLICE_PREFIX) + r"[0-9]+\Z")
_NEEDS_QUOTES = re.compile(r"[ .%()/\-\\]")

#: types whose value artdaq_database writes from its JSON tree without unescaping
_RAW_TYPES = {"nil", "bool", "number", "complex", "tableid"}
_KNOWN_TYPES = {"nil", "string", "string_unquoted", "string_singlequoted", "string_doublequoted",
                "bool", "number", "complex", "sequence", "table", "tableid"}


class FhiclRecordError(ArchiverError):
    """A document record that cannot be turned back into FHiCL (no ``document.data`` tables, or
    nesting deeper than the reader accepts)."""

    def __init__(self, reason: str, *, name: str = ""):
        self.reason = reason
        self.name = name
        prefix = f"FHiCL record {name}: " if name else "FHiCL record: "
        super().__init__(prefix + reason)


class _Out(list):
    """The output pieces; the item loops move every :data:`_JOIN_PIECES` of them into one
    string (``chunks``), so a big file's text is never held as millions of small strings (a
    25 MB export was ~220 MB of pieces)."""

    __slots__ = ("chunks",)

    def __init__(self):
        super().__init__()
        self.chunks: list[str] = []

    def compact(self) -> None:
        self.chunks.append("".join(self))
        self.clear()

    def text(self) -> str:
        self.compact()
        text = "".join(self.chunks)
        self.chunks.clear()
        return text


_JOIN_PIECES = 8192


def write_fhicl(data: dict, metadata: dict | None = None) -> str:
    """FHiCL text for ``data`` = ``{"prolog": {...}, "main": {...}}`` and its metadata tree."""
    metadata = metadata if isinstance(metadata, dict) else {}
    out = _Out()
    main = data.get("main")
    main = main if isinstance(main, dict) else {}
    main_meta = _children(metadata.get("main"))
    items = list(main.items())
    first = 0
    while first < len(items) and _BEFORE_PROLOG.match(str(items[first][0])):
        first += 1  # the project's include_before_prolog extension: back in front
    _atoms(items[:first], main_meta, out, 0)
    prolog = data.get("prolog")
    if isinstance(prolog, dict) and (len(prolog) or first):  # (an empty one keeps its includes)
        out.append("BEGIN_PROLOG\n")
        _atoms(prolog.items(), _children(metadata.get("prolog")), out, 0)
        out.append("\nEND_PROLOG\n")
    _atoms(items[first:], main_meta, out, 0)
    return _fix_includes(out.text())


def _children(meta) -> dict:
    if isinstance(meta, dict):
        children = meta.get("children")
        if isinstance(children, dict):
            return children
    return {}


def _atoms(items, children: dict, out: list, depth: int) -> None:
    """The items of a table, each ``comment⏎key: value[ annotation⏎]``."""
    if depth > MAX_DEPTH:
        raise FhiclRecordError(f"nesting deeper than {MAX_DEPTH} levels")
    own_metas = children.pairs if isinstance(children, MultiTable) else None
    for i, (key, value) in enumerate(items):
        meta = children.get(key)  # the first definition's metadata, as the C++ looks it up
        if not isinstance(meta, dict) or meta.get("type") not in _KNOWN_TYPES:
            meta = infer_meta(value)
        elif own_metas is not None and i < len(own_metas) and isinstance(value, str):
            own = own_metas[i][1]
            if (isinstance(own, dict) and str(own.get("type", "")).startswith("string")
                    and meta["type"] in _RAW_TYPES):
                # a repeated key whose first definition is not a string: the C++ writes this
                # string as it holds it in its JSON tree, escapes and all
                value = _json_escaped(value)
        _atom(str(key), value, meta, out, depth)
        if len(out) > _JOIN_PIECES and isinstance(out, _Out):
            out.compact()


def _atom(key: str, value, meta: dict, out: list, depth: int) -> None:
    typ = meta.get("type")
    if key.startswith(_INCLUDE_NAME):
        out.append(" \n#include ")  # the writer's "#include: " fixed up by the post-pass
        out.append('"' + _json_escaped(_text(value)) + '"')  # written as stored in JSON
        out.append(" \n")
        return
    if typ == "table" and not isinstance(value, (dict, list)):
        typ, annotate = "string", False   # a table whose data is a string: written as a string
    else:
        annotate = typ != "table"
    comment = _text(meta.get("comment", ""))
    if "#include " in comment:
        comment = ""
    if (typ == "string_doublequoted" and isinstance(value, str) and value.startswith("@table::")
            and _SPLICE_KEY.match(key)):
        out.append(comment + "\n" + value)
    else:
        name = key
        protection = meta.get("protection")
        if isinstance(protection, str) and protection and protection != "@none":
            name += " " + protection
        out.append(comment + "\n" + name + ": ")
        _value(value, typ, meta, out, depth)
    if annotate:
        out.append(" " + _text(meta.get("annotation", "")) + "\n")


def _value(value, typ: str, meta: dict, out: list, depth: int) -> None:
    """The value part of an item (``json2fcldb``'s atom conversion, then Karma)."""
    if value.__class__ is str:  # most leaves: straight to the quoting
        out.append(_quoted_atom(value, typ))
    elif typ == "sequence" and isinstance(value, list):
        _sequence(value, _children(meta), out, depth + 1)
    elif typ == "table" and isinstance(value, dict):
        out.append("{\n")
        _atoms(value.items(), _children(meta), out, depth + 1)
        out.append("\n}")
    elif isinstance(value, dict):   # data and metadata disagree: keep the data
        _value(value, "table", infer_meta(value), out, depth)
    elif isinstance(value, list):
        _value(value, "sequence", infer_meta(value), out, depth)
    else:
        out.append(atom_text(value, typ))


def _sequence(values: list, children: dict, out: list, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise FhiclRecordError(f"nesting deeper than {MAX_DEPTH} levels")
    out.append("[")
    for i, value in enumerate(values):
        if i:
            out.append(", ")
        meta = children.get(str(i))
        if not isinstance(meta, dict) or meta.get("type") not in _KNOWN_TYPES:
            meta = infer_meta(value)
        if isinstance(value, (dict, list)):
            typ = meta.get("type")
            _value(value, typ, meta, out, depth)
            if typ != "table" and isinstance(value, list):
                out.append(" " + _text(meta.get("annotation", "")) + "\n")
        else:
            out.append(element_text(value, meta.get("type")))
        if len(out) > _JOIN_PIECES and isinstance(out, _Out):
            out.compact()
    out.append("]")


def atom_text(value, typ: str | None) -> str:
    """The text of a leaf bound to a key, quoted as its metadata type says."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return karma_double(value)
    return _quoted_atom(_text(value), typ)


def _quoted_atom(text: str, typ: str | None) -> str:
    """A key-bound leaf's text quoted as its metadata type says."""
    if typ == "string_doublequoted":
        return '"' + text + '"'
    if typ == "string_singlequoted":
        return "'" + text + "'"
    if typ == "string":
        return '"' + text + '"' if _NEEDS_QUOTES.search(text) else text
    return text


def element_text(value, typ: str | None) -> str:
    """The text of a leaf inside a sequence (artdaq_database quotes every type but numbers and
    the string types by the same rule as untyped strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return karma_double(value)
    text = _text(value)
    if typ == "number" or typ == "string_unquoted":
        return text
    if typ == "string_doublequoted":
        return '"' + text + '"'
    if typ == "string_singlequoted":
        return "'" + text + "'"
    return '"' + text + '"' if _NEEDS_QUOTES.search(text) else text


def karma_double(value: float) -> str:
    """Boost.Karma's default ``double_`` output: fixed below 1e7 and from 1e-3, else
    scientific, at most 3 fractional digits, trailing zeros dropped."""
    if value != value:
        return "nan"
    if value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-3 or magnitude >= 1e7):
        mantissa, exponent = f"{value:.3e}".split("e")
        mantissa = mantissa.rstrip("0")
        if mantissa.endswith("."):
            mantissa += "0"
        return f"{mantissa}e{int(exponent)}"
    text = f"{value:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def infer_meta(value) -> dict:
    """Metadata for a value that has none (a record written by another tool or by hand)."""
    if isinstance(value, dict):
        return {"type": "table", "comment": "", "children": {}}
    if isinstance(value, list):
        return {"type": "sequence", "comment": "", "annotation": "", "children": {}}
    if isinstance(value, bool):
        typ = "bool"
    elif value is None:
        typ = "nil"
    elif isinstance(value, (int, float)):
        typ = "number"
    else:
        typ = "string"
    return {"type": typ, "comment": "", "annotation": ""}


def _text(value) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n",
                 "\r": "\\r", "\t": "\\t"}
_JSON_ESCAPE_RE = re.compile('[\"\\\\\b\f\n\r\t]')


def _json_escaped(text: str) -> str:
    """artdaq_database's ``to_json_string``: the include file name is written as it is held in
    its JSON tree (quotes, backslashes and control characters backslash-escaped)."""
    return _JSON_ESCAPE_RE.sub(lambda m: _JSON_ESCAPES[m.group()], text)


def _fix_includes(text: str) -> str:
    """artdaq_database's post-pass: ``#include`` + blanks + ``:`` + anything up to the next
    double quote becomes ``#include ``; its search resumes where the replaced match ended."""
    if "#include" not in text:
        return text
    pos = 0
    search = _OUT_INCLUDE.search
    while pos <= len(text):
        match = search(text, pos)
        if match is None:
            break
        start, end = match.span()
        text = text[:start] + "#include " + text[end:]
        pos = end
    return text
