"""The FHiCL writer: regenerates deterministic FHiCL text from an artdaq_database data tree and its
metadata tree (quoting from the metadata types, comments above, annotations trailing).
Iterative (no recursion)."""

from archiver_resources.errors import ArchiverError
from archiver_resources.fhicl import lexer as lx
from archiver_resources.fhicl.parser import INCLUDE_KEY_PREFIX

INDENT = "  "



class FhiclRecordError(ArchiverError):
    """A document record that cannot be turned back into FHiCL (no ``document.data`` tables, or a
    key that is not a FHiCL name)."""

    def __init__(self, reason: str, *, name: str = ""):
        self.reason = reason
        self.name = name
        prefix = f"FHiCL record {name}: " if name else "FHiCL record: "
        super().__init__(prefix + reason)


_RAW_CHECKS = {
    "number": lambda v: lx.NUMBER_RE.match(v) is not None,
    "bool": lambda v: v in ("true", "false"),
    "nil": lambda v: v in ("nil", "@nil"),
    "tableid": lambda v: v.startswith("@") and " " not in v and "\n" not in v,
    "complex": lambda v: v.startswith("(") and v.endswith(")") and "\n" not in v,
    "string_unquoted": lambda v: lx.BARE_RE.match(v) is not None,
}


def write_fhicl(data: dict, metadata: dict | None = None) -> str:
    """FHiCL text for ``data`` = ``{"prolog": {...}, "main": {...}}`` and its metadata tree.

    Leading ``#include`` keys of main are written before ``BEGIN_PROLOG`` (where they usually
    stand); the prolog is wrapped in ``BEGIN_PROLOG``/``END_PROLOG``. Missing metadata is
    inferred from the values. The result ends with one newline, or is empty. Raises
    ``FhiclRecordError`` for a key that is no FHiCL name.
    """
    metadata = metadata or {}
    prolog = data.get("prolog") or {}
    main = data.get("main") or {}
    prolog_meta = _children(metadata.get("prolog"))
    main_meta = _children(metadata.get("main"))

    main_items = list(main.items())
    n_hoisted = 0
    for key, value in main_items:
        if not _is_include(key, value, main_meta.get(key)):
            break
        n_hoisted += 1

    out: list[str] = []
    _write_items(main_items[:n_hoisted], main_meta, True, "", out)
    if prolog:
        out.append("BEGIN_PROLOG")
        _write_items(list(prolog.items()), prolog_meta, True, "", out)
        out.append("END_PROLOG")
        if len(main_items) > n_hoisted:
            out.append("")
    _write_items(main_items[n_hoisted:], main_meta, True, "", out)
    return "\n".join(out) + "\n" if out else ""


def _children(meta) -> dict:
    if isinstance(meta, dict):
        children = meta.get("children")
        if isinstance(children, dict):
            return children
    return {}


def _is_include(key, value, meta) -> bool:
    if not (isinstance(key, str) and key.startswith(INCLUDE_KEY_PREFIX)
            and lx.INCLUDE_KEY_RE.match(key) and isinstance(value, str)):
        return False
    return not isinstance(meta, dict) or meta.get("type", "string_doublequoted") == \
        "string_doublequoted"


def _write_items(items: list, metas: dict, is_table: bool, indent: str, out: list) -> None:
    """Write table items or sequence elements (``items`` of (key, value)), depth-first."""
    stack = [[is_table, items, metas, 0, indent, None]]
    while stack:
        frame = stack[-1]
        is_table, items, metas, i, ind, closer = frame
        if i >= len(items):
            stack.pop()
            if closer is not None:
                out.append(closer)
            continue
        frame[3] = i + 1
        key, value = items[i]
        meta = metas.get(key) if is_table else metas.get(str(i))
        if not isinstance(meta, dict):
            meta = infer_meta(value)
        sep = "" if is_table or i == len(items) - 1 else ","
        for line in _comment_lines(meta.get("comment")):
            out.append(ind + line)
        annotation = _annotation(meta.get("annotation"))

        if is_table:
            if _is_include(key, value, meta):
                out.append(ind + '#include "' + _dq_content(value) + '"' + annotation)
                continue
            if key.startswith("@table::"):
                out.append(ind + (value if isinstance(value, str) and value.startswith("@table::")
                                  else key) + annotation)
                continue
            if not isinstance(key, str) or not lx.KEY_RE.match(key):
                raise FhiclRecordError(f"key {key!r} is not a FHiCL name")
            protection = meta.get("protection")
            if protection and not lx.PROTECTION_RE.match(protection):
                raise FhiclRecordError(f"key {key!r}: protection {protection!r} is not a marker")
            head = ind + key + (" " + protection if protection else "") + ": "
        else:
            head = ind

        if isinstance(value, dict):
            if not value:
                out.append(head + "{}" + sep)
                continue
            out.append(head + "{")
            stack.append([True, list(value.items()), _children(meta), 0, ind + INDENT,
                          ind + "}" + sep])
        elif isinstance(value, list):
            child_metas = _children(meta)
            inline = _inline_sequence(value, child_metas)
            if inline is not None:
                out.append(head + inline + sep + annotation)
                continue
            out.append(head + "[")
            stack.append([False, [(None, v) for v in value], child_metas, 0, ind + INDENT,
                          ind + "]" + sep + annotation])
        else:
            out.append(head + atom_text(value, meta.get("type")) + sep + annotation)


def _inline_sequence(values: list, metas: dict) -> str | None:
    """``[a, b, c]`` when every element is an atom without comment or annotation."""
    parts = []
    for i, value in enumerate(values):
        if isinstance(value, (dict, list)):
            return None
        meta = metas.get(str(i))
        if not isinstance(meta, dict):
            meta = infer_meta(value)
        elif meta.get("comment") or meta.get("annotation"):
            return None
        parts.append(atom_text(value, meta.get("type")))
    return "[" + ", ".join(parts) + "]"


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
        text = str(value)
        if text in ("true", "false"):
            typ = "bool"
        elif text == "nil":
            typ = "nil"
        elif lx.NUMBER_RE.match(text):
            typ = "number"
        else:
            typ = "string_doublequoted"
    return {"type": typ, "comment": "", "annotation": ""}


def atom_text(value, typ: str | None) -> str:
    """The FHiCL text of one leaf; a raw value that its type cannot hold is double-quoted."""
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif value is None:
        value = "nil"
    elif not isinstance(value, str):
        value = repr(value) if isinstance(value, float) else str(value)
    if typ == "string_singlequoted":
        if lx.SQ_CONTENT_RE.match(value):
            return "'" + value + "'"
        return '"' + _dq_content(value) + '"'
    check = _RAW_CHECKS.get(typ)
    if check is not None and value and check(value):
        return value
    return '"' + _dq_content(value) + '"'


def _dq_content(value: str) -> str:
    """``value`` as the inside of a double-quoted FHiCL string: kept raw when it already is one
    (escapes stay as written), escaped otherwise."""
    if lx.DQ_CONTENT_RE.match(value):
        return value
    return (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
            .replace("\r", "\\r"))


def _comment_lines(comment) -> list:
    if not comment or not isinstance(comment, str):
        return []
    lines = []
    for part in comment.replace("\r", "\n").split("\n"):
        part = part.lstrip()
        if not part.strip():
            continue
        if not (part.startswith("#") or part.startswith("//")) or _looks_like_include(part):
            part = "# " + part
        lines.append(part)
    return lines


def _looks_like_include(comment: str) -> bool:
    """True when the parser would read this comment line as an ``#include`` directive."""
    return comment.startswith("#include") and (len(comment) == 8 or comment[8] in " \t")


def _annotation(annotation) -> str:
    if not annotation or not isinstance(annotation, str):
        return ""
    text = annotation.replace("\r", " ").replace("\n", " ")
    if not (text.startswith("#") or text.startswith("//")):
        text = "# " + text
    return " " + text
