"""The FHiCL parser: text → the artdaq_database data tree (raw-string leaves) and its parallel
metadata tree, plus the list of comment lines. Iterative (no recursion), so nesting depth is
bounded only by ``MAX_DEPTH``."""

from typing import NamedTuple

from archiver_resources.fhicl import lexer as lx
from archiver_resources.fhicl.lexer import (
    BARE, COMMENT, COMPLEX, DQSTRING, EOF, INCLUDE, KEY, NEWLINE, NUMBER, PUNCT, REFERENCE,
    SQSTRING, normalize_newlines, scan_failure, syntax_error,
)

#: deepest nesting of tables/sequences accepted. The metadata tree is twice as deep as the data
#: tree, and ``json.dumps`` of a record must stay within Python's default recursion limit.
MAX_DEPTH = 200

INCLUDE_KEY_PREFIX = "fhicl_pound_include_"

_BARE_TYPES = {"true": "bool", "false": "bool", "nil": "nil"}


class ParsedFhicl(NamedTuple):
    """The two trees of spec §4.1 and the comment lines of the text."""

    data: dict       # {"prolog": {...}, "main": {...}}
    metadata: dict   # {"prolog": {"type": "table", "comment": "#prolog", "children": {...}}, "main": ...}
    comments: list   # [{"linenum": int, "value": "#..."}]


def _close_reason(opener: str) -> str:
    return f"'{opener}' opened here is never closed"


def parse_fhicl(text: str, name: str = "<fhicl>") -> ParsedFhicl:  # noqa: C901 (one hot loop)
    """Parse FHiCL ``text`` (file ``name`` for error messages) into data and metadata trees.

    Raises ``FhiclSyntaxError`` naming file, line, column and the offending line.
    """
    text = normalize_newlines(text)
    match = lx.TOKEN.match
    tail = lx.TAIL.match
    main_data: dict = {}
    main_meta: dict = {}
    prolog_data: dict = {}
    prolog_meta: dict = {}
    comments: list = []

    # state of the container being filled
    is_table = True
    data = main_data       # dict (table) or list (sequence)
    children = main_meta   # metadata children of ``data``
    node = None            # metadata node of ``data`` (None at top level)
    open_pos = 0           # where ``data`` was opened
    n_includes = 0         # include keys numbered per table
    expect_comma = False   # sequences: a value was just read
    stack: list = []

    # top level
    in_prolog = False
    prolog_pos = 0
    other_includes = 0     # include counter of the top-level table not currently filled

    # pending table item
    key = None
    protection = None
    key_comment = ""
    key_pos = 0

    # line tracking for comment/annotation attachment
    line = 1
    at_line_start = True
    comment_line = -1
    comment_text = ""

    pos = 0
    while True:
        m = match(text, pos)
        if m is None:
            raise scan_failure(text, pos, name)
        kind = m.lastindex
        if kind == NEWLINE:
            line += 1
            at_line_start = True
            pos = m.end()
            continue
        if kind == COMMENT:
            if at_line_start:
                value = m.group(COMMENT)
                if value.startswith("#include") and (len(value) == 8 or value[8] in " \t"):
                    raise syntax_error(text, m.start(COMMENT),
                                       'malformed #include, expected #include "file.fcl"', name)
                comments.append({"linenum": line, "value": value})
                comment_line = line
                comment_text = value
            pos = m.end()
            continue
        start = m.start(kind)
        end = pos = m.end()
        first = at_line_start
        at_line_start = False
        if kind == INCLUDE and not first:
            continue  # '#include' after code on a line is a trailing comment
        comment = comment_text if (first and comment_line == line - 1) else ""

        if is_table and key is None:
            # ---- a table item: "key:", "@table::x", "#include", "}", prolog markers, EOF
            if kind == KEY:
                key = m.group(6)
                protection = m.group(7)
                key_comment = comment
                key_pos = start
                continue
            if kind == INCLUDE:
                t = tail(text, end)
                inc_key = INCLUDE_KEY_PREFIX + str(n_includes)
                n_includes += 1
                data[inc_key] = m.group(3)
                children[inc_key] = {"type": "string_doublequoted", "comment": comment,
                                     "annotation": (t.group(1) or "") if t else ""}
                continue
            if kind == PUNCT and text[start] == "}":
                if not stack:
                    raise syntax_error(text, start, "'}' without a matching '{'", name)
                (is_table, data, children, node, open_pos, n_includes,
                 expect_comma) = stack.pop()
                continue
            if kind == REFERENCE and m.group(REFERENCE).startswith("@table::"):
                raw = m.group(REFERENCE)
                t = tail(text, end)
                if raw in data:
                    del data[raw]
                    del children[raw]
                data[raw] = raw
                children[raw] = {"type": "tableid", "comment": comment,
                                 "annotation": (t.group(1) or "") if t else ""}
                continue
            if kind == BARE and not stack:
                word = m.group(BARE)
                if word == "BEGIN_PROLOG":
                    if in_prolog:
                        raise syntax_error(text, start, "BEGIN_PROLOG inside a prolog", name)
                    in_prolog = True
                    prolog_pos = start
                    data, children = prolog_data, prolog_meta
                    n_includes, other_includes = other_includes, n_includes
                    continue
                if word == "END_PROLOG":
                    if not in_prolog:
                        raise syntax_error(text, start, "END_PROLOG without BEGIN_PROLOG", name)
                    in_prolog = False
                    data, children = main_data, main_meta
                    n_includes, other_includes = other_includes, n_includes
                    continue
            if kind == EOF:
                if stack:
                    raise syntax_error(text, open_pos, _close_reason("{"), name)
                if in_prolog:
                    raise syntax_error(text, prolog_pos, "BEGIN_PROLOG without END_PROLOG", name)
                break
            if kind == BARE and m.group(BARE) in ("BEGIN_PROLOG", "END_PROLOG"):
                raise syntax_error(text, start, f"{m.group(BARE)} is only allowed at top level",
                                   name)
            if kind == INCLUDE:
                raise syntax_error(text, start, "#include is only allowed where a key may stand",
                                   name)
            raise syntax_error(text, start,
                               f"expected a key followed by ':' but found {lx.describe(text, start)}",
                               name)

        if not is_table:
            # ---- a sequence: ',' or ']' after a value; ']' or a value otherwise
            if kind == PUNCT and text[start] == "]":
                t = tail(text, end)
                node["annotation"] = (t.group(1) or "") if t else ""
                (is_table, data, children, node, open_pos, n_includes,
                 expect_comma) = stack.pop()
                continue
            if expect_comma:
                if kind == PUNCT and text[start] == ",":
                    expect_comma = False
                    continue
                if kind == EOF:
                    raise syntax_error(text, open_pos, _close_reason("["), name)
                raise syntax_error(text, start,
                                   f"expected ',' or ']' but found {lx.describe(text, start)}", name)
            node_comment = comment
        else:
            node_comment = key_comment

        # ---- a value: of table item ``key`` or the next sequence element
        if kind == NUMBER:
            raw = m.group(NUMBER)
            typ = "number"
        elif kind == BARE:
            raw = m.group(BARE)
            typ = _BARE_TYPES.get(raw, "string_unquoted")
        elif kind == DQSTRING:
            raw = m.group(DQSTRING)
            typ = "string_doublequoted"
            if is_table and key.startswith(INCLUDE_KEY_PREFIX) and lx.INCLUDE_KEY_RE.match(key):
                key = INCLUDE_KEY_PREFIX + str(n_includes)  # a literal include key: renumber
                n_includes += 1
        elif kind == SQSTRING:
            raw = m.group(SQSTRING)
            typ = "string_singlequoted"
        elif kind == REFERENCE:
            raw = m.group(REFERENCE)
            typ = "nil" if raw == "@nil" else "tableid"
        elif kind == COMPLEX:
            raw = "(" + m.group(11) + "," + m.group(12) + ")"
            typ = "complex"
        elif kind == PUNCT and (text[start] == "{" or text[start] == "["):
            if len(stack) >= MAX_DEPTH:
                raise syntax_error(text, start, f"nesting deeper than {MAX_DEPTH} levels", name)
            if text[start] == "{":
                value = {}
                meta = {"type": "table", "comment": node_comment, "children": {}}
            else:
                value = []
                meta = {"type": "sequence", "comment": node_comment, "annotation": "",
                        "children": {}}
            if is_table:
                if protection:
                    meta["protection"] = protection
                if key in data:
                    del data[key]
                    del children[key]
                data[key] = value
                children[key] = meta
                key = None
            else:
                children[str(len(data))] = meta
                data.append(value)
                expect_comma = True
            stack.append((is_table, data, children, node, open_pos, n_includes, expect_comma))
            is_table = value.__class__ is dict
            data = value
            children = meta["children"]
            node = meta
            open_pos = start
            n_includes = 0
            expect_comma = False
            continue
        else:
            raise _value_error(text, start, kind, key if is_table else None, key_pos,
                               open_pos, name)

        t = tail(text, end)
        meta = {"type": typ, "comment": node_comment,
                "annotation": (t.group(1) or "") if t else ""}
        if is_table:
            if protection:
                meta["protection"] = protection
            if key in data:
                del data[key]
                del children[key]
            data[key] = raw
            children[key] = meta
            key = None
        else:
            children[str(len(data))] = meta
            data.append(raw)
            expect_comma = True

    return ParsedFhicl(
        {"prolog": prolog_data, "main": main_data},
        {"prolog": {"type": "table", "comment": "#prolog", "children": prolog_meta},
         "main": {"type": "table", "comment": "#main", "children": main_meta}},
        comments,
    )


def _value_error(text, start, kind, key, key_pos, open_pos, name):
    """The error for a token that cannot start a value."""
    if kind == EOF:
        if key is not None:
            return syntax_error(text, key_pos, f"key '{key}' has no value", name)
        return syntax_error(text, open_pos, _close_reason("["), name)
    found = lx.describe(text, start)
    if kind == KEY:
        found = f"key {found}"
    if key is not None:
        return syntax_error(text, start, f"expected a value for key '{key}' but found {found}",
                            name)
    return syntax_error(text, start, f"expected a value but found {found}", name)
