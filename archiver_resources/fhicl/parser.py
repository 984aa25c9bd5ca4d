"""The FHiCL reader: text → the artdaq_database data tree (raw-string leaves), its parallel
metadata tree and the ``comments`` list, exactly as artdaq_database's ``FhiclReader`` makes them
(fhicl-cpp's grammar in snippet mode, then ``fcl2jsondb``). docs/formats.md §5 states every rule.

The grammar is a PEG (Boost.Spirit): alternatives are tried in order, a failed alternative is
backtracked, and an *expectation* (after ``[``, ``{``, ``(``, ``BEGIN_PROLOG``, ``.`` or ``[`` in a
key) fails the whole parse. Beyond what the C++ accepts, three extensions let every real run record
archive (each is reported in ``ParsedFhicl.extensions``):

* ``non_ascii``: non-ASCII characters count as the letter ``x`` (see ``lexer``);
* ``table_splice``: ``@table::name`` where an item may stand becomes the item
  ``fhicl_table_splice_<n>: "@table::name"`` (the C++ refuses every ``@table::``);
* ``indexed_reference`` / ``indexed_key``: ``@local::a.b[0]`` references and top-level keys such
  as ``a[1]: 5`` are kept as text (the C++ stops or aborts on them);
* ``include_before_prolog``: ``#include`` lines before ``BEGIN_PROLOG`` (refused by the C++
  as "PROLOG blocks must be both contiguous and not nested") are kept as main items named
  ``fhicl_pound_include_<n>_before_prolog``, written back in front of the prolog;
* ``complex_whole``: a complex number written with blanks, ``(1.0, -0.5)``, is kept whole as
  ``(1.0,-0.5)``; artdaq_database keeps only ``(1.0,`` (losing the imaginary part, and its export
  no longer parses) — the one place where the record deliberately differs from the C++ one;
* ``bom``: a byte-order mark at the very start is skipped;
* ``empty``: an empty text gives an empty record (the C++ aborts on it);
* ``include_overrun``: an ``#include`` directive whose replacement leaves artdaq_database's
  scan beyond the end of the text (the C++ crashes; see ``lexer.replace_includes``).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from itertools import islice
from typing import NamedTuple

from archiver_resources.errors import FhiclSyntaxError
from archiver_resources.fhicl import lexer as lx
from archiver_resources.fhicl.lexer import INCLUDE_KEY_PREFIX, syntax_error
from archiver_resources.fhicl.tables import table_of

#: deepest nesting of tables/sequences accepted. The metadata tree is twice as deep as the data
#: tree, and ``json.dumps`` of a record must stay within Python's default recursion limit.
MAX_DEPTH = 200

TABLE_SPLICE_PREFIX = "fhicl_table_splice_"
BEFORE_PROLOG_SUFFIX = "_before_prolog"
_INCLUDE_KEY = re.compile(INCLUDE_KEY_PREFIX + r"[0-9]+\Z")

# value tags (fhicl-cpp's value_tag)
NIL, BOOL, NUMBER, COMPLEX, STRING, TABLEID, SEQUENCE, TABLE = range(8)
_TYPE_NAMES = {NIL: "nil", BOOL: "bool", NUMBER: "number", COMPLEX: "complex",
               TABLEID: "tableid", SEQUENCE: "sequence", TABLE: "table"}

#: metadata type of each kind of token the fast path matches
_FAST_TYPES = {"num": "number", "bool": "bool", "nil": "nil", "dss": "string_unquoted",
               "ass": "string_unquoted", "dq": "string_doublequoted",
               "sq": "string_singlequoted", "open": None}
#: by group index in lexer.ITEM_FAST (the key is group 1) and lexer.VALUE_FAST (no key group):
#: (metadata type or None for "open", is a quoted string)
_ITEM_KINDS = [None, None] + [(_FAST_TYPES[k], k in ("dq", "sq")) for k in lx.FAST_KINDS]
_VALUE_KINDS = [None] + [(_FAST_TYPES[k], k in ("dq", "sq")) for k in lx.FAST_KINDS]
assert all(lx.ITEM_FAST.groupindex[k] == i + 2 for i, k in enumerate(lx.FAST_KINDS))
assert all(lx.VALUE_FAST.groupindex[k] == i + 1 for i, k in enumerate(lx.FAST_KINDS))

# protection levels (binding modifiers)
_PROTECTIONS = {"@protect_ignore": 1, "@protect_error": 2}


class ParsedFhicl(NamedTuple):
    """The two trees of an artdaq_database record, its comment list and the extensions used."""

    data: dict       # {"prolog": {...}, "main": {...}}
    metadata: dict   # {"prolog": {"type": "table", "comment": "#prolog", "children": {...}}, ...}
    comments: list   # [{"linenum": int, "value": "#..."}] or the "No comments" placeholder
    extensions: frozenset = frozenset()


_NEWLINE = re.compile("\n")
#: a line that still starts with ``#include`` after artdaq_database's replacement
_INCLUDE_LINE = re.compile(r"^#include", re.MULTILINE)

_INDEX_KEYS = tuple(str(i) for i in range(1024))


#: hex digits of a parameter-set id (a SHA-1 digest) after ``!id::``
PSET_ID_DIGITS = 40

#: tables and sequences with at most this many members share equal metadata (_Parser.nodes)
_SHARED_CHILDREN = 32
#: texts from this size on share those nodes: the sharing saves memory on big files and costs
#: ~15 % of the parse time, which small files (nearly all) need not pay
_SHARE_NODES_FROM = 4 << 20


def index_key(i: int) -> str:
    """``str(i)``, the metadata key of sequence element ``i`` (shared for the first 1024)."""
    return _INDEX_KEYS[i] if i < 1024 else str(i)


class _Fail(Exception):
    """An expectation failure or a semantic error: the whole parse fails here."""

    def __init__(self, pos: int, reason: str):
        super().__init__(reason)
        self.pos = pos
        self.reason = reason


def parse_fhicl(text: str, name: str = "<fhicl>") -> ParsedFhicl:
    """Parse FHiCL ``text`` (file ``name`` for error messages) into data and metadata trees.

    Raises ``FhiclSyntaxError`` naming file, line, column and the offending line.
    """
    extensions = set()
    if text.startswith("\ufeff"):
        text = text[1:]
        extensions.add("bom")
    if not text.isascii():
        extensions.add("non_ascii")
    if not text:
        extensions.add("empty")  # artdaq_database aborts on an empty text; here: an empty record
    comments = lx.scan_comments(text)
    prepared = lx.reader_lines(lx.replace_includes(text, extensions))
    directive = (_INCLUDE_LINE.search(prepared)
                 if prepared.startswith("#include") or "\n#include" in prepared else None)
    if directive is not None:  # fhicl-cpp's line reader would try to include a file
        error = syntax_error(prepared, directive.start(),
                             'malformed #include, expected #include "file.fcl"', name)
        raise _with_original_line(error, text)
    parser = _Parser(prepared, comments, name, extensions)
    try:
        prolog, main = parser.document()
    except _Fail as failure:
        error = syntax_error(prepared, failure.pos, failure.reason, name)
        raise _with_original_line(error, text) from None
    except RecursionError:  # pragma: no cover - MAX_DEPTH keeps the recursion well below
        raise syntax_error(prepared, 0, f"nesting deeper than {MAX_DEPTH} levels", name) from None
    comment_list = [{"linenum": line, "value": value} for line, value in sorted(comments.items())]
    if not comment_list:
        comment_list = [{"linenum": 0, "value": "No comments"}]
    prolog_data, prolog_meta = prolog
    main_data, main_meta = main
    return ParsedFhicl(
        {"prolog": prolog_data, "main": main_data},
        {"prolog": {"type": "table", "comment": "#prolog", "children": prolog_meta},
         "main": {"type": "table", "comment": "#main", "children": main_meta}},
        comment_list,
        frozenset(extensions),
    )


class _Parser:
    """One parse of a prepared text (``lexer.reader_lines``). Values are returned as
    ``(tag, data, meta_children, line, raw)``; the caller builds the node's metadata once it knows
    the key (comments attach by line, include keys get none)."""

    def __init__(self, text: str, comments: dict, name: str, extensions: set):
        self.t = text
        self.n = len(text)
        self.comments = comments
        self.name = name
        self.extensions = extensions
        self.depth = 0
        self.splices = 0
        # start offsets of the lines up to the one after the last comment (bisect → line)
        self.line_starts: list = [0]
        self.lines_end = 0
        if comments:
            last = max(comments) + 1
            starts = self.line_starts
            starts.extend(islice((m.end() for m in _NEWLINE.finditer(text)), last - 1))
            end = text.find("\n", starts[-1])
            self.lines_end = len(text) if end < 0 else end + 1
        # the stretches of text where a comment attaches: a comment's line and the line below
        self.note_starts: list = []
        self.note_ends: list = []
        starts = self.line_starts
        for line in sorted(comments):
            if line - 1 >= len(starts):
                break
            begin = starts[line - 1]
            stop = starts[line + 1] if line + 1 < len(starts) else self.lines_end
            if self.note_ends and begin <= self.note_ends[-1]:
                self.note_ends[-1] = max(self.note_ends[-1], stop)
            else:
                self.note_starts.append(begin)
                self.note_ends.append(stop)
        self.plain_until = 0  # leaves before this position need no comment lookup
        self.leaf_metas: dict = {}
        self.notes: dict = {}  # line -> (comment, annotation)
        self.plain_leaves: dict = {}  # type -> the leaf metadata without comment/annotation
        self.by_line: dict = {}  # (type, line) -> the leaf metadata of that line
        shared: dict = {}
        self.share = shared.setdefault
        # equal metadata of small tables and sequences (the same keys bound to the same shared
        # nodes), and their equal table/sequence nodes, as one object each: the tree of a big
        # file of repeated tables (channel lists) is ~40 % smaller; nothing changes a node
        # once its table or sequence is parsed
        self.nodes: dict = {}
        self.sharing = len(text) >= _SHARE_NODES_FROM

    # ---- positions -------------------------------------------------------------------------

    def skip(self, pos: int) -> int:
        return lx.SKIP.match(self.t, pos).end()

    def char(self, pos: int) -> str:
        return self.t[pos] if pos < self.n else ""

    def line_of(self, pos: int) -> int:
        """1-based line of ``pos`` where a comment may attach (the line holds one, or the line
        above does), else 0: lines matter only for comment attachment (errors count their own).
        """
        if pos < self.plain_until or pos >= self.lines_end:
            return 0
        # only a position inside a commented stretch needs its line; elsewhere the answer is 0
        # and, as in fast_leaf_meta, plain_until moves to the next stretch
        j = bisect_right(self.note_ends, pos)
        starts = self.note_starts
        if j < len(starts) and starts[j] <= pos:
            return bisect_right(self.line_starts, pos)
        self.plain_until = starts[j] if j < len(starts) else self.n + 1
        return 0

    # ---- metadata ----------------------------------------------------------------------------

    def comment_at(self, line: int) -> str:
        comment = self.comments.get(line - 1, "") if line > 1 else ""
        if comment and comment[0] != "/" and "#include " not in comment:
            return comment
        return ""

    def annotation_at(self, line: int) -> str:
        return self.comments.get(line, "") if line >= 1 else ""

    def meta(self, key: str, tag: int, raw: str, line: int, protection: str | None,
             children) -> dict:
        """The metadata node of a value bound to ``key`` (fcl2jsondb's key order)."""
        if tag == STRING:
            typ = _quotation_type(raw)
        else:
            typ = _TYPE_NAMES[tag]
        if INCLUDE_KEY_PREFIX in key:
            comment = annotation = ""
            has_annotation = True
        elif not line:  # a text without comments
            comment = annotation = ""
            has_annotation = tag != TABLE
        else:
            notes = self.notes.get(line)
            if notes is None:
                notes = self.notes[line] = (self.comment_at(line), self.annotation_at(line))
            comment = notes[0]
            has_annotation = tag != TABLE
            annotation = notes[1] if has_annotation else ""
        if children is None and protection is None:
            cache_key = (typ, comment, annotation)
            node = self.leaf_metas.get(cache_key)
            if node is None:
                node = self.leaf_metas[cache_key] = {"type": typ, "comment": comment,
                                                     "annotation": annotation}
            return node
        node = {"type": typ, "comment": comment}
        if has_annotation:
            node["annotation"] = annotation
        if protection is not None:
            node["protection"] = protection
        if children is not None:
            node["children"] = children
            if self.sharing and len(children) <= _SHARED_CHILDREN:
                return self.nodes.setdefault(
                    ("node", typ, comment, has_annotation, annotation, protection, id(children)),
                    node)
        return node

    def shared_children(self, children: dict) -> dict:
        """``children`` or an equal dict met before (small ones only; see ``nodes``)."""
        if not self.sharing or len(children) > _SHARED_CHILDREN:
            return children
        return self.nodes.setdefault(tuple([(k, id(v)) for k, v in children.items()]), children)

    def fast_leaf_meta(self, typ: str, key: str, pos: int) -> dict:
        """``meta`` for a leaf found by the fast path (no protection, no children). Keeps
        ``plain_until``: leaves before it are on lines no comment attaches to (the fast loops
        then take the plain metadata without calling this)."""
        j = bisect_right(self.note_ends, pos)
        starts = self.note_starts
        if j < len(starts) and starts[j] <= pos and INCLUDE_KEY_PREFIX not in key:
            self.plain_until = starts[j]  # inside a commented stretch: no shortcut here
            cache_key = (typ, bisect_right(self.line_starts, pos))
            node = self.by_line.get(cache_key)
            if node is None:
                line = cache_key[1]
                comment, annotation = self.comment_at(line), self.annotation_at(line)
                node = self.by_line[cache_key] = self.leaf_metas.setdefault(
                    (typ, comment, annotation),
                    {"type": typ, "comment": comment, "annotation": annotation})
            return node
        self.plain_until = starts[j] if j < len(starts) else self.n + 1
        return self.plain_leaf(typ)

    def plain_leaf(self, typ: str) -> dict:
        """The leaf metadata of a type without comment or annotation (one shared dict)."""
        node = self.plain_leaves.get(typ)
        if node is None:
            node = self.plain_leaves[typ] = self.leaf_metas.setdefault(
                (typ, "", ""), {"type": typ, "comment": "", "annotation": ""})
        return node

    # ---- document ----------------------------------------------------------------------------

    def document(self):
        """``*prolog >> *item``, then nothing but blanks and comments may remain."""
        prolog: list = []    # [key, data, meta, level]
        main: list = []
        prolog_names: dict = {}
        pos = self.includes_before_prolog(main)
        while True:
            q = self.skip(pos)
            if not self.t.startswith("BEGIN_PROLOG", q):
                break
            pos_begin = q
            pos = self.items(q + 12, prolog, prolog_names, None)
            q = self.skip(pos)
            if not self.t.startswith("END_PROLOG", q):
                if q >= self.n:
                    raise _Fail(pos_begin, "BEGIN_PROLOG without END_PROLOG")
                raise _Fail(*self.diagnose_item(q, top=True, closer="END_PROLOG"))
            pos = q + 10
        pos = self.items(pos, main, prolog_names, prolog)
        q = self.skip(pos)
        if q < self.n:
            if self.t.startswith("BEGIN_PROLOG", q):
                raise _Fail(q, "BEGIN_PROLOG after the first key: prolog blocks must come "
                               "first, one after the other, and cannot be nested")
            raise _Fail(*self.diagnose_item(q, top=True, closer=None))
        return _section(prolog), _section(main)

    def includes_before_prolog(self, main: list) -> int:
        """Extension: ``#include`` directives before the first ``BEGIN_PROLOG`` (the C++ sees
        them as keys and then refuses the prolog). They become the first main items, named
        ``fhicl_pound_include_<n>_before_prolog`` so the writer puts them back in front."""
        pos = 0
        found = []
        while True:
            start = self.skip(pos)
            if not self.t.startswith(INCLUDE_KEY_PREFIX, start):
                break
            parsed = self.item(start, top=True)
            if parsed is None or parsed[1] != STRING or not _INCLUDE_KEY.match(parsed[0]):
                break
            found.append(parsed)
            pos = parsed[7]
        if not found or not self.t.startswith("BEGIN_PROLOG", self.skip(pos)):
            self.plain_until = 0  # parsed again from the start
            return 0
        self.extensions.add("include_before_prolog")
        for key, tag, data, children, line, raw, protection, _ in found:
            key += BEFORE_PROLOG_SUFFIX
            main.append((key, data, self.meta(key, tag, raw, line, protection, children)))
        return pos

    def items(self, pos: int, entries: list, prolog_names: dict, prolog: list | None) -> int:
        """The top-level (or prolog) item loop; returns where it stopped."""
        fast = lx.ITEM_FAST.match
        while True:
            m = fast(self.t, pos)
            if m is not None:
                parsed = self.fast_item(m)
            else:
                parsed = self.item(self.skip(pos), top=True)
                if parsed is None:
                    return pos
            key, tag, data, children, line, raw, protection, end = parsed
            meta = self.meta(key, tag, raw, line, protection, children)
            if prolog is None:  # in a prolog
                prolog_names[key] = prolog_names.get(key, 0) + 1
            else:
                name0 = key.split("[", 1)[0].split("]", 1)[0]
                if prolog_names.get(name0):
                    # a main definition replaces (removes) the first prolog one of that name
                    for i, entry in enumerate(prolog):
                        if entry[0] == name0:
                            del prolog[i]
                            prolog_names[name0] -= 1
                            break
            entries.append((key, data, meta))
            pos = end

    def item(self, start: int, top: bool):
        """One ``key binding value`` item at ``start`` (already skipped), or None.

        Returns ``(key, tag, data, children, line, raw, protection, end)``.
        """
        t = self.t
        if t.startswith("@table::", start):
            return self.table_splice(start, top)
        if t.startswith("!table::", start):
            raise _Fail(start, "'!table::' is not a FHiCL reference")
        key_end = self.key(start, top)
        if key_end is None:
            return None
        key, p = key_end
        bound = self.binding(p)
        if bound is None:
            return None
        protection, p = bound
        value = self.value(p)
        if value is None:
            q = self.skip(p)
            # the '@erase' alternative then expects '@erase' after the ':' and fails there
            raise _Fail(*self.diagnose_value(q, key, start))
        tag, data, children, line, raw, end = value
        if protection is not None and tag in (TABLE, SEQUENCE):
            _check_nested_protection(key, _PROTECTIONS[protection], children, tag, start)
        return key, tag, data, children, line, raw, protection, end

    def fast_item(self, m):
        """The item of an ``ITEM_FAST`` match (same result as ``item``)."""
        key = m.group("key")
        key = self.share(key, key)
        tag, data, children, line, raw, end = self.fast_value(m)
        return key, tag, data, children, line, raw, None, end

    def fast_value(self, m):
        """The value of an ``ATOM_FAST`` match (same result as ``value``)."""
        kind = m.lastgroup
        start, end = m.span(kind)
        raw = m.group(kind)
        if kind == "open":
            return self.table(start) if raw == "{" else self.sequence(start)
        if kind == "dq" or kind == "sq":  # a quoted string without escapes or control chars
            quote = '"' if kind == "dq" else "'"
            return STRING, raw, None, self.line_of(start - 1), quote + raw + quote, end + 1
        if len(raw) <= 6:
            raw = self.share(raw, raw)
        if kind == "num":
            tag = NUMBER
        elif kind == "ass" or kind == "dss":
            tag = STRING
        elif kind == "bool":
            tag = BOOL
        else:
            tag = NIL
        return tag, raw, None, self.line_of(start), raw, end

    def table_splice(self, start: int, top: bool):
        """Extension: ``@table::name`` where an item may stand."""
        p = start + 8
        key_end = self.key(p, True, skip=False)
        if key_end is None:
            raise _Fail(p, "expected a name after '@table::'")
        ref, end = key_end
        self.extensions.add("table_splice")
        key = f"{TABLE_SPLICE_PREFIX}{self.splices}"
        self.splices += 1
        raw = '"@table::' + ref + '"'
        return key, STRING, "@table::" + ref, None, self.line_of(start), raw, None, end

    def key(self, pos: int, top: bool, skip: bool = True):
        """``qualname`` at top level (``a.b[0]`` with blanks allowed around the delimiters),
        ``name`` in nested tables; returns ``(key, end)`` or None."""
        t = self.t
        p = self.skip(pos) if skip else pos
        word = lx.WORD.match(t, p).end()
        if word == p or not lx.munched_ass(self.char(word)) or t[p].isdigit() and t[p].isascii():
            return None
        key = t[p:word]
        if not top:
            return self.share(key, key), word
        end = word
        indexed = False
        while True:
            q = self.skip(end)
            c = self.char(q)
            if c == ".":
                r = self.skip(q + 1)
                w = lx.WORD.match(t, r).end()
                if w == r or not lx.munched_ass(self.char(w)) or (t[r].isdigit()
                                                                  and t[r].isascii()):
                    raise _Fail(r, f"expected a name after '.' in key '{key}'")
                key += "." + t[r:w]
                end = w
            elif c == "[":
                r = self.skip(q + 1)
                m = lx.DIGITS.match(t, r)
                if m is None or not lx.munched_number(self.char(m.end())):
                    raise _Fail(r, f"expected an index after '[' in key '{key}'")
                s = self.skip(m.end())
                if self.char(s) != "]":
                    raise _Fail(s, f"expected ']' in key '{key}'")
                key += "[" + (m.group().lstrip("0") or "0") + "]"
                end = s + 1
                indexed = True
            else:
                break
        if indexed:
            self.extensions.add("indexed_key")
        return self.share(key, key), end

    def binding(self, pos: int):
        """``:`` or ``@protect_ignore:`` / ``@protect_error:``; returns (protection, end)."""
        p = self.skip(pos)
        t = self.t
        c = self.char(p)
        if c == ":":
            return None, p + 1
        if c == "@":
            for word in ("@protect_ignore", "@protect_error"):
                if t.startswith(word, p) and self.char(p + len(word)) == ":":
                    return word, p + len(word) + 1
        return None

    # ---- values ------------------------------------------------------------------------------

    def value(self, pos: int):
        """One value at ``pos`` (blanks/comments skipped first), or None when no alternative
        matches. Returns ``(tag, data, children, line, raw, end)``."""
        t = self.t
        p = self.skip(pos)
        c = self.char(p)
        nxt = None
        # nil, boolean
        if c == "@" and t.startswith("@nil", p) and lx.free_after(self.char(p + 4)):
            raw = self.raw(p, p + 4)
            return NIL, raw, None, self.line_of(p), raw, p + 4
        if c == "t" and t.startswith("true", p) and lx.free_after(self.char(p + 4)):
            raw = self.raw(p, p + 4)
            return BOOL, raw, None, self.line_of(p), raw, p + 4
        if c == "f" and t.startswith("false", p) and lx.free_after(self.char(p + 5)):
            raw = self.raw(p, p + 5)
            return BOOL, raw, None, self.line_of(p), raw, p + 5
        # number: uint | inf | real | hex | bin
        end = self.number(p)
        if end is not None:
            raw = self.raw(p, end)
            if len(raw) <= 6:
                raw = self.share(raw, raw)
            return NUMBER, raw, None, self.line_of(p), raw, end
        if c == "(":
            return self.complex(p)
        # string: ass | dss | squoted | dquoted
        if c == "'" or c == '"':
            m = (lx.SQUOTED if c == "'" else lx.DQUOTED).match(t, p)
            if m is not None and lx.free_after(self.char(m.end())):
                raw = m.group()
                problem = lx.canonical_string_problem(raw, c)
                if problem:
                    raise _Fail(p, problem)
                return STRING, raw[1:-1], None, self.line_of(p), raw, m.end()
        else:
            w = lx.WORD.match(t, p).end()
            if w > p:
                word = t[p:w]
                nxt = self.char(w)
                first_digit = word[0].isdigit() and word[0].isascii()
                if not first_digit and lx.munched_ass(nxt):
                    raw = self.raw(p, w)
                    if len(raw) <= 6:
                        raw = self.share(raw, raw)
                    return STRING, raw, None, self.line_of(p), raw, w
                if first_digit and lx.munched(nxt) and not (word.isdigit() and word.isascii()):
                    raw = self.raw(p, w)
                    return STRING, raw, None, self.line_of(p), raw, w
        # localref / dbref / id (their '@' keywords are disabled in snippet mode: '!' instead)
        if c == "!":
            if t.startswith("!local::", p) or t.startswith("!db::", p) \
                    or t.startswith("!sequence::", p):
                raise _Fail(p, f"'{t[p:p + 12].split(':')[0]}::' is not a FHiCL reference")
            if t.startswith("!id::", p):
                return self.dbid(p)
        if c == "[":
            return self.sequence(p)
        if c == "{":
            return self.table(p)
        # catchall (snippet mode): references such as @local::a.b come through here
        m = lx.CATCHALL.match(t, p)
        w = m.end()
        if w > p and not (t[p].isdigit() and t[p].isascii()):
            nxt = self.char(w)
            if lx.munched_ass(nxt):
                if nxt == "[" and t[p] == "@":
                    w = self.indexed_reference(w)
                raw = self.raw(p, w)
                return STRING, raw, None, self.line_of(p), raw, w
        return None

    def raw(self, p: int, end: int) -> str:
        """fhicl-cpp's raw value text of a token: the token and the blanks and comments after it,
        cut at the first ``#``, ``//``, space, tab or line end (``rtrim_whitespace``) — so a
        vertical tab or form feed right after a token stays part of the value."""
        t = self.t
        if end < self.n and t[end] in "\v\f":
            stop = end + 1
            while stop < self.n and t[stop] in "\v\f":
                stop += 1
            return t[p:stop]
        return t[p:end]

    def number(self, p: int) -> int | None:
        """End of a number token at ``p`` (uint, inf, real, hex, bin), or None."""
        t = self.t
        c = self.char(p)
        if not c or c not in "0123456789.+-eEi":
            return None
        m = lx.DIGITS.match(t, p)
        if m is not None and lx.munched_number(self.char(m.end())):
            return m.end()
        m = lx.INF.match(t, p)
        if m is not None and lx.free_after(self.char(m.end()), "),]}"):
            return m.end()
        m = lx.REAL_CHARS.match(t, p)
        if m is not None and lx.munched_number(self.char(m.end())) \
                and lx.canonical_number_ok(m.group()):
            return m.end()
        if c == "0":
            for pattern in (lx.HEX, lx.BIN):
                m = pattern.match(t, p)
                if m is not None and m.end() - p > 2 and lx.munched_number(self.char(m.end())):
                    return m.end()
        return None

    def complex(self, p: int):
        """``( number , number )``; everything after ``(`` is expected."""
        q = self.skip(p + 1)
        end = self.number(q)
        if end is None:
            raise _Fail(q, "malformed complex number, expected (real, imag)")
        re_start, re_end = q, end
        q = self.skip(end)
        if self.char(q) != ",":
            raise _Fail(q, "malformed complex number, expected ',' between the parts")
        q = self.skip(q + 1)
        end = self.number(q)
        if end is None:
            raise _Fail(q, "malformed complex number, expected (real, imag)")
        im_start = q
        q = self.skip(end)
        if self.char(q) != ")":
            raise _Fail(q, "malformed complex number, expected ')'")
        raw = _rtrim(self.raw(p, q + 1))
        if len(raw) < q + 1 - p:
            # artdaq_database keeps a complex number only up to its first blank, "(1.0," for
            # "(1.0, -0.5)": the imaginary part would be lost and the export would not parse.
            # The project keeps it whole instead: (real,imag) as written, without the blanks.
            raw = "(" + self.t[re_start:re_end] + "," + self.t[im_start:end] + ")"
            self.extensions.add("complex_whole")
        return COMPLEX, raw, None, self.line_of(p), raw, q + 1

    def dbid(self, p: int):
        """``!id::`` + 40 hex digits (fhicl-cpp's ``@id::``, renamed in snippet mode): a
        parameter-set id is a SHA-1 digest in hex, and fhicl-cpp takes exactly that many."""
        q = p + 5
        t = self.t
        end = q
        while end < self.n and t[end] in "0123456789abcdefABCDEF":
            end += 1
        if end - q != PSET_ID_DIGITS or not lx.munched_number(self.char(end)):
            raise _Fail(q, f"expected a {PSET_ID_DIGITS}-digit parameter-set id after '!id::'")
        raw = self.raw(p, end)
        return TABLEID, raw, None, self.line_of(p), raw, end

    def indexed_reference(self, pos: int) -> int:
        """Extension: ``[n]`` and ``.name`` parts after a reference such as ``@local::a``."""
        t = self.t
        end = pos
        while True:
            c = self.char(end)
            if c == "[":
                m = lx.DIGITS.match(t, end + 1)
                if m is None or self.char(m.end()) != "]":
                    break
                end = m.end() + 1
            elif c == ".":
                w = lx.WORD.match(t, end + 1).end()
                if w == end + 1:
                    break
                end = w
            else:
                break
        if end > pos and lx.munched_ass(self.char(end)):
            self.extensions.add("indexed_reference")
            return end
        return pos

    def sequence(self, p: int):
        """``[`` > -element > *(``,`` > element) > ``]`` (a comma may come before the first
        element, as fhicl-cpp's optional first element allows)."""
        line = self.line_of(p)
        self.enter(p)
        data: list = []
        children: dict = {}
        t = self.t
        fast = lx.VALUE_FAST.match
        skip = lx.SKIP.match
        share = self.share
        leaf = self.fast_leaf_meta
        plain_leaves = self.plain_leaves
        q = p + 1
        first = True
        while True:
            m = fast(t, q)
            typ = _VALUE_KINDS[m.lastindex][0] if m is not None else None
            if typ is not None:  # inlined fast_value for an atom
                index = m.lastindex
                quoted = _VALUE_KINDS[index][1]
                item = m.group(index)
                if not quoted and len(item) <= 6:
                    item = share(item, item)
                vpos = m.start(index) - quoted
                children[index_key(len(data))] = (
                    plain_leaves.get(typ) or self.plain_leaf(typ) if vpos < self.plain_until
                    else leaf(typ, "", vpos))
                data.append(item)
                q = skip(t, m.end()).end()
            else:
                r = m.start("open") if m is not None else skip(t, q).end()
                value = self.value(r)
                if value is not None:
                    self.add_element(data, children, value)
                    q = skip(t, value[5]).end()
                elif first:
                    q = r  # no first element
                else:
                    raise _Fail(*self.diagnose_value(r, None))
            first = False
            if not t.startswith(",", q):
                break
            q += 1
        if not t.startswith("]", q):
            if q >= self.n:
                raise _Fail(p, "'[' opened here is never closed")
            raise _Fail(q, f"expected ',' or ']' but found {lx.describe(t, q)}")
        self.depth -= 1
        return SEQUENCE, data, self.shared_children(children), line, "", q + 1

    def add_element(self, data: list, children: dict, value) -> None:
        tag, item, item_children, line, raw, _ = value
        key = index_key(len(data))
        children[key] = self.meta(key, tag, raw, line, None, item_children)
        data.append(item)

    def table(self, p: int):
        """``{`` > *item > ``}``; a repeated key replaces the first one in place (protections
        permitting)."""
        line = self.line_of(p)
        self.enter(p)
        data: dict = {}
        children: dict = {}
        pos = p + 1
        t = self.t
        fast = lx.ITEM_FAST.match
        skip = lx.SKIP.match
        share = self.share
        leaf = self.fast_leaf_meta
        kinds = _ITEM_KINDS
        plain_leaves = self.plain_leaves
        while True:
            m = fast(t, pos)
            if m is not None:
                index = m.lastindex
                typ, quoted = kinds[index]
                key = m.group(1)
                key = share(key, key)
                protection = None
                if typ is None:  # '{' or '[': the exact parser from here
                    o = m.start(index)
                    tag, item, item_children, item_line, raw, end = (
                        self.table(o) if t[o] == "{" else self.sequence(o))
                    meta = self.meta(key, tag, raw, item_line, None, item_children)
                else:  # inlined fast_value for an atom
                    item = m.group(index)
                    end = m.end()
                    if not quoted and len(item) <= 6:
                        item = share(item, item)
                    vpos = m.start(index) - quoted
                    meta = (plain_leaves.get(typ) or self.plain_leaf(typ)
                            if vpos < self.plain_until else leaf(typ, key, vpos))
            else:
                start = skip(t, pos).end()
                if t.startswith("}", start):
                    pos = start
                    break
                parsed = self.item(start, top=False)
                if parsed is None:
                    break
                key, tag, item, item_children, item_line, raw, protection, end = parsed
                meta = self.meta(key, tag, raw, item_line, protection, item_children)
            if key in data:
                start = m.start(1) if m is not None else start
                old = _PROTECTIONS.get(children[key].get("protection"), 0)
                new = _PROTECTIONS.get(protection, 0)
                if new > old:
                    raise _Fail(start, f"redefining '{key}' would increase its protection")
                if old == 2:
                    raise _Fail(start, f"'{key}' is protected (@protect_error)")
                if old == 1:
                    pos = end
                    continue
            data[key] = item
            children[key] = meta
            pos = end
        q = skip(t, pos).end()
        if not t.startswith("}", q):
            if q >= self.n:
                raise _Fail(p, "'{' opened here is never closed")
            raise _Fail(*self.diagnose_item(q, top=False, closer="}"))
        self.depth -= 1
        return TABLE, data, self.shared_children(children), line, "", q + 1

    def enter(self, p: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Fail(p, f"nesting deeper than {MAX_DEPTH} levels")

    # ---- error diagnosis ---------------------------------------------------------------------

    def diagnose_item(self, q: int, top: bool, closer: str | None):
        """Position and reason for an item that cannot be parsed at ``q``."""
        t = self.t
        if q >= self.n:
            if closer == "END_PROLOG":
                return q, "BEGIN_PROLOG without END_PROLOG"
            return q, "unexpected end of file"
        c = t[q]
        if c == "}" and closer != "}":
            return q, "'}' without a matching '{'"
        if t.startswith("END_PROLOG", q) and closer != "END_PROLOG":
            return q, "END_PROLOG without BEGIN_PROLOG"
        if t.startswith("BEGIN_PROLOG", q):
            if closer == "END_PROLOG":
                return q, "BEGIN_PROLOG inside a prolog"
            if closer == "}":
                return q, "BEGIN_PROLOG is only allowed at top level"
        if t.startswith("#include", q):
            return q, 'malformed #include, expected #include "file.fcl"'
        key_end = self.key(q, top, skip=False) if not t.startswith("@", q) else None
        if key_end is None:
            glued = q > 0 and (lx.WORD.match(t, q - 1).end() > q - 1 or t[q - 1] in "\"'")
            if c in ":." and glued:
                return q, (f"unexpected {c!r} right after a value: a value holding {c!r} must "
                           "be quoted")
            if c == ":":
                return q, "':' without a valid key before it"
            if not top and lx.WORD.match(t, q).end() > q:
                w = lx.WORD.match(t, q).end()
                if self.char(w) == ".":
                    return w, "dotted keys are only allowed at top level"
            expected = "a key followed by ':'" + (" or '}'" if closer == "}" else "")
            return q, f"expected {expected} but found {lx.describe(t, q)}"
        key, p = key_end
        if key.startswith(INCLUDE_KEY_PREFIX):
            return q, 'malformed #include, expected #include "file.fcl"'
        if not top and self.char(p) in ".[":
            return p, f"dotted keys are only allowed at top level ('{key}{self.char(p)}…')"
        r = self.skip(p)
        if self.char(r) != ":" and not t.startswith("@protect_", r):
            return r, f"expected ':' after key '{key}' but found {lx.describe(t, r)}"
        bound = self.binding(p)
        if bound is None:
            return r, f"malformed binding after key '{key}'"
        return self.diagnose_value(self.skip(bound[1]), key, q)

    def diagnose_value(self, q: int, key: str | None, key_pos: int | None = None):
        """Position and reason for a value that cannot be parsed at ``q``."""
        t = self.t
        for_key = f" for key '{key}'" if key else ""
        if key and key.startswith(INCLUDE_KEY_PREFIX) and key_pos is not None:
            return key_pos, 'malformed #include, expected #include "file.fcl"'
        if q >= self.n:
            if key:
                return (key_pos if key_pos is not None else q), f"key '{key}' has no value"
            return q, "expected a value but found end of file"
        c = t[q]
        if c in "'\"":
            m = (lx.SQUOTED if c == "'" else lx.DQUOTED).match(t, q)
            if m is None:
                return q, f"unterminated {c}-quoted string"
            return m.end(), ("a quoted string must be followed by a blank, ',', ']' or '}' "
                             f"but found {lx.describe(t, m.end())}")
        if c == "@":
            if t.startswith("@table::", q):
                return q, "@table:: cannot be used as a value"
            return q, f"unknown or malformed reference {lx.describe(t, q)}"
        if c in "]},":
            return q, f"expected a value{for_key} but found {lx.describe(t, q)}"
        w = lx.WORD.match(t, q).end()
        if w > q and self.char(self.skip(w)) == ":" and key:
            return q, f"expected a value{for_key} but found key {lx.describe(t, q)}"
        end = lx.CATCHALL.match(t, q).end()
        if end == q:
            real = lx.REAL_CHARS.match(t, q)
            end = real.end() if real else q
        if end > q:
            token = t[q:end]
            nxt = self.char(end)
            if nxt and not lx.munched_ass(nxt):
                return end, (f"unexpected character {nxt!r} after {token!r}: unquoted values may "
                             "hold only letters, digits, '_', '.', ':' and '@' (quote the value)")
            return q, f"invalid value {token!r}{for_key}: not a number, bool or name"
        return q, f"unexpected character {c!r}"


def _with_original_line(error: FhiclSyntaxError, text: str) -> FhiclSyntaxError:
    """The error with the operator's own line as excerpt (the parsed text has ``#include``
    directives replaced by keys)."""
    lines = lx.reader_lines(text).split("\n")
    if 1 <= error.line <= len(lines) and lines[error.line - 1] != error.excerpt \
            and "#include" in text:
        excerpt = lines[error.line - 1]
        if len(excerpt) > 100:
            left = max(0, error.column - 60)
            excerpt = ("…" if left else "") + excerpt[left:left + 100]
        return FhiclSyntaxError(error.reason, name=error.name, line=error.line,
                                column=error.column, excerpt=excerpt)
    return error


def _quotation_type(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return "string_doublequoted"
    if len(raw) >= 2 and raw[0] == raw[-1] == "'":
        return "string_singlequoted"
    return "string_unquoted"


def _rtrim(raw: str) -> str:
    """artdaq_database's ``rtrim_whitespace`` of a raw value (cuts a complex at its first blank)."""
    pos = raw.find("//")
    skip = min((i for i in (raw.find(c) for c in "# \n\r\t") if i >= 0), default=-1)
    if pos < 0:
        pos = skip
        if pos < 0:
            return raw
    elif skip >= 0:
        pos = min(pos, skip)
    pos -= 1
    while raw[pos] == " " and pos != 0:
        pos -= 1
    return raw[:pos + 1]


def _section(entries: list):
    """The data and metadata tables of one top-level section (a key may repeat)."""
    data = table_of([(key, value) for key, value, _ in entries])
    meta = table_of([(key, node) for key, _, node in entries])
    return data, meta


def _check_nested_protection(key: str, level: int, children, tag: int, pos: int) -> None:
    """fhicl-cpp's check when a protected table or sequence is bound: no item inside it (at any
    depth, sequence elements' tables included) may carry an explicit, weaker protection."""
    if not children:
        return
    stack = [(children, level, key)]
    while stack:
        nodes, limit, where = stack.pop()
        for name, node in nodes.items():
            own = _PROTECTIONS.get(node.get("protection"), 0)
            if own and own < limit:
                raise _Fail(pos, f"nested item {where}.{name} has protection "
                                 f"{node.get('protection')}, weaker than its enclosing item's")
            if node.get("type") in ("table", "sequence") and node.get("children"):
                stack.append((node["children"], max(limit, own), f"{where}.{name}"))
