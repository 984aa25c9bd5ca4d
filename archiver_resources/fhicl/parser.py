"""The FHiCL parser: text → the artdaq_database data tree (raw-string leaves) and its parallel
metadata tree, plus the list of comment lines. Iterative (no recursion), so nesting depth is
bounded only by ``MAX_DEPTH``."""

from typing import NamedTuple

from archiver_resources.fhicl import lexer as lx
from archiver_resources.fhicl.lexer import (
    BARE, COMMENT, COMPLEX, COMPLEX_IM, COMPLEX_RE, DQ_CONTENT, DQSTRING, EOF, INCLUDE,
    INCLUDE_FILE, ITEM, ITEM_GROUPS, KEY, KEY_NAME, KEY_PROTECTION, NUMBER, PUNCT, REFERENCE,
    SQ_CONTENT, SQSTRING, normalize_newlines, scan_failure, syntax_error,
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


_INDEX_KEYS = tuple(str(i) for i in range(1024))


def index_key(i: int) -> str:
    """``str(i)``, the metadata key of sequence element ``i`` (shared by every sequence for the
    first 1024 elements)."""
    return _INDEX_KEYS[i] if i < 1024 else str(i)


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

    # comment attachment: the last comment-only line, until the next token consumes it
    pending_comment = None
    pending_end = 0        # position of the newline ending that comment line
    line = 1               # line number at ``counted``, updated lazily (comments, errors)
    counted = 0

    # Keys (each repeats in every table of its kind: ~1.4 M in a 25 MB file) and short numbers
    # and words (true, 0, 64, ...) are one string object per distinct text within the parse.
    shared = {}.setdefault
    # Leaf metadata is shared: one dict per distinct (type, comment, annotation) instead of one
    # per value (a 25 MB file has ~1.4 M leaves; their dicts were ~40 % of the tree). The trees
    # are read-only for every consumer; json.dumps writes shared dicts like separate ones.
    leaf_metas: dict = {}

    def leaf_meta(typ, comment, annotation):
        key = (typ, comment, annotation)
        meta = leaf_metas.get(key)
        if meta is None:
            meta = leaf_metas[key] = {"type": typ, "comment": comment, "annotation": annotation}
        return meta

    pos = 0
    while True:
        m = match(text, pos)
        if m is None:
            raise scan_failure(text, pos, name)
        kind = m.lastindex
        start = m.start(kind)
        if kind == COMMENT or kind == INCLUDE:
            first = pos == 0 or text.rfind("\n", pos, start) >= 0
            pos = m.end()
            if not first:
                continue  # a trailing comment: the annotation of the node before it
            if kind == COMMENT:
                value = m.group(COMMENT)
                if value.startswith("#include") and (len(value) == 8 or value[8] in " \t"):
                    raise syntax_error(text, start,
                                       'malformed #include, expected #include "file.fcl"', name)
                line += text.count("\n", counted, start)
                counted = start
                comments.append({"linenum": line, "value": value})
                pending_comment = value
                pending_end = pos
                continue
        end = pos = m.end()
        if pending_comment is None:
            comment = ""
        else:
            # the comment line directly above, and this token first on its line
            comment = pending_comment if text.count("\n", pending_end, start) == 1 else ""
            pending_comment = None

        if is_table and key is None:
            # ---- a table item: "key:", "@table::x", "#include", "}", prolog markers, EOF
            if kind == ITEM:  # fast path: "key: atom # comment" as one token
                (key, protection, number, dq, sq, ref, bare,
                 annotation) = m.group(*ITEM_GROUPS)
                key = shared(key, key)
                if number is not None:
                    raw, typ = (shared(number, number) if len(number) <= 6 else number), "number"
                elif bare is not None:
                    raw, typ = (shared(bare, bare) if len(bare) <= 6 else bare), \
                        _BARE_TYPES.get(bare, "string_unquoted")
                elif dq is not None:
                    raw, typ = dq, "string_doublequoted"
                    if key.startswith(INCLUDE_KEY_PREFIX) and lx.INCLUDE_KEY_RE.match(key):
                        key = INCLUDE_KEY_PREFIX + str(n_includes)
                        n_includes += 1
                elif sq is not None:
                    raw, typ = sq, "string_singlequoted"
                else:
                    raw, typ = ref, ("nil" if ref == "@nil" else "tableid")
                if protection:
                    meta = {"type": typ, "comment": comment, "annotation": annotation or "",
                            "protection": protection}
                else:
                    meta = leaf_meta(typ, comment, annotation or "")
                if key in data:
                    del data[key]
                    del children[key]
                data[key] = raw
                children[key] = meta
                key = None
                continue
            if kind == KEY:
                key = m.group(KEY_NAME)
                key = shared(key, key)
                protection = m.group(KEY_PROTECTION)
                key_comment = comment
                key_pos = start
                continue
            if kind == INCLUDE:
                t = tail(text, end)
                inc_key = INCLUDE_KEY_PREFIX + str(n_includes)
                n_includes += 1
                data[inc_key] = m.group(INCLUDE_FILE)
                children[inc_key] = leaf_meta("string_doublequoted", comment,
                                              (t.group(1) or "") if t else "")
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
                children[raw] = leaf_meta("tableid", comment, (t.group(1) or "") if t else "")
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
            if len(raw) <= 6:
                raw = shared(raw, raw)
            typ = "number"
        elif kind == BARE:
            raw = m.group(BARE)
            if len(raw) <= 6:
                raw = shared(raw, raw)
            typ = _BARE_TYPES.get(raw, "string_unquoted")
        elif kind == DQSTRING:
            raw = m.group(DQ_CONTENT)
            typ = "string_doublequoted"
            if is_table and key.startswith(INCLUDE_KEY_PREFIX) and lx.INCLUDE_KEY_RE.match(key):
                key = INCLUDE_KEY_PREFIX + str(n_includes)  # a literal include key: renumber
                n_includes += 1
        elif kind == SQSTRING:
            raw = m.group(SQ_CONTENT)
            typ = "string_singlequoted"
        elif kind == REFERENCE:
            raw = m.group(REFERENCE)
            typ = "nil" if raw == "@nil" else "tableid"
        elif kind == COMPLEX:
            raw = "(" + m.group(COMPLEX_RE) + "," + m.group(COMPLEX_IM) + ")"
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
                children[index_key(len(data))] = meta
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
        annotation = (t.group(1) or "") if t else ""
        if is_table and protection:
            meta = {"type": typ, "comment": node_comment, "annotation": annotation,
                    "protection": protection}
        else:
            meta = leaf_meta(typ, node_comment, annotation)
        if is_table:
            if key in data:
                del data[key]
                del children[key]
            data[key] = raw
            children[key] = meta
            key = None
        else:
            children[index_key(len(data))] = meta
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
    if kind == KEY or kind == ITEM:
        found = f"key {found}"
    if key is not None:
        return syntax_error(text, start, f"expected a value for key '{key}' but found {found}",
                            name)
    return syntax_error(text, start, f"expected a value but found {found}", name)
