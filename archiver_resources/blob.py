"""The UconDB blob: the legacy text format that packs one run's FHiCL files into one document.

Layout (the legacy tool's, kept byte for byte so existing readers keep working): a header
``Start of Record⏎Run Number: <run>⏎Packed on <TS> UTC⏎``, then per file
``⏎#####⏎<basename>:⏎#####⏎<content>``, then the footer
``⏎End of Record⏎Run Number: <run>⏎Packed on <TS> UTC⏎``; files sorted by lower-cased basename,
then the ``END_FILES_ORDER`` files in that order; UTF-8 bytes; MD5 over those bytes. ``Packed on``
comes from the caller (the archived configuration's time), never from the wall clock, so
re-packing the same content gives the same bytes.

Ambiguous content is refused, not guessed at: legacy readers split a blob with the regular
expression ``⏎#####⏎(.+?):⏎#####⏎`` and end the last file at the first ``⏎End of Record⏎``. A file
whose content would create an extra marker (alone, or together with the marker that always follows
it) or contains an ``End of Record`` footer line would be split wrongly by every existing consumer,
so :func:`pack` raises :class:`BlobError` naming the file instead. With that rule
``unpack(pack(x)) == x`` holds for every accepted file set (keys = basenames).

Taking over legacy blobs: the legacy tool packed with the wall-clock time, so a blob it uploaded
differs from ours only in the two ``Packed on`` times. :class:`PackedOnComparator` recognises
exactly that, streamed (see its docstring for what counts as a difference).
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
import tempfile
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterable, Iterator, Mapping, Optional

from archiver_resources.errors import BlobError

# Files that go last, in this order (as the legacy packer put them), matched case-insensitively.
END_FILES_ORDER = (
    "boot.fcl", "known_boardreaders_list.fcl", "setup.fcl", "environment.fcl", "metadata.fcl",
    "settings.fcl", "ranks.fcl", "RunHistory.fcl", "RunHistory2.fcl",
)
_END_RANK = {name.lower(): i for i, name in enumerate(END_FILES_ORDER)}

# C-locale month abbreviations; built here so the process locale never matters.
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# The legacy splitter's marker pattern (extract_files_from_blob).
MARKER_RE = re.compile(r"\n#####\n(.+?):\n#####\n")
_FOOTER_LINE = "\nEnd of Record\n"
_MARKER_PREFIX = "\n#####\n"
_HEADER_RE = re.compile(r"Start of Record\nRun Number: (\d+)\nPacked on ([^\n]*) UTC\n")

# The legacy --validate rule: reported name → FHiCL key searched in metadata.fcl.
VALIDATE_FILE = "metadata.fcl"
VALIDATE_KEYS = {"components": "components", "configuration": "config_name",
                 "projectversion": "sbndaq_commit_or_version"}


# ---------------------------------------------------------------------------------------------
# Timestamp, checksums
# ---------------------------------------------------------------------------------------------

def format_packed_on(dt: datetime) -> str:
    """``%b %d %H:%M`` of ``dt`` in UTC with C-locale month names (naive = already UTC)."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc)
    return f"{_MONTHS[dt.month - 1]} {dt.day:02d} {dt.hour:02d}:{dt.minute:02d}"


def md5_hex(data: bytes) -> str:
    """Hex MD5 of the exact blob bytes (never of decoded text)."""
    return hashlib.md5(data).hexdigest()


def adler32(data: bytes) -> int:
    """Unsigned Adler-32 of the blob bytes, as UconDB reports it."""
    return zlib.adler32(data) & 0xFFFFFFFF


# ---------------------------------------------------------------------------------------------
# Packing
# ---------------------------------------------------------------------------------------------

def header_text(run_number: int, packed_on: str) -> str:
    return f"Start of Record\nRun Number: {run_number}\nPacked on {packed_on} UTC\n"


def footer_text(run_number: int, packed_on: str) -> str:
    return f"\nEnd of Record\nRun Number: {run_number}\nPacked on {packed_on} UTC\n"


def section_marker(name: str) -> str:
    return f"\n#####\n{name}:\n#####\n"


def basename(relpath: str) -> str:
    """Section name of a file: the last component of its relative (posix) path."""
    return PurePosixPath(relpath).name


def order_files(relpaths: Iterable[str], *, run: int | None = None) -> list[str]:
    """Relative paths in blob order (others by lower-cased basename, then ``END_FILES_ORDER``);
    BlobError when two basenames clash case-insensitively."""
    seen: dict[str, str] = {}
    for relpath in relpaths:
        name = basename(relpath)
        _check_name(name, relpath, run)
        key = name.lower()
        if key in seen:
            first, second = sorted((seen[key], relpath))
            raise BlobError(
                f"two files share the basename {name!r} (compared case-insensitively): "
                f"{first!r} and {second!r}; the blob names sections by basename, so one would be "
                "lost. Rename or remove one of them.", run=run)
        seen[key] = relpath
    regular = sorted((k for k in seen if k not in _END_RANK))
    ending = sorted((k for k in seen if k in _END_RANK), key=_END_RANK.__getitem__)
    return [seen[k] for k in regular + ending]


def _check_name(name: str, relpath: str, run: int | None) -> None:
    if not name:
        raise BlobError(f"file {relpath!r} has an empty basename", run=run)
    if "\n" in name or "\r" in name:
        raise BlobError(f"file {relpath!r}: a line break in a file name cannot be packed", run=run)


def check_content(name: str, content: str, *, run: int | None = None) -> None:
    """Refuse content that legacy readers would split wrongly (see the module docstring)."""
    if not isinstance(content, str):
        raise BlobError(f"file {name!r}: content must be text, got {type(content).__name__}",
                        run=run)
    match = MARKER_RE.search(content)
    if match is None:
        # A marker may also straddle the end of the content and the "⏎#####⏎" that follows it.
        last = content.rfind(_MARKER_PREFIX)
        if last >= 0:
            match = MARKER_RE.search(content[last:] + _MARKER_PREFIX)
    if match is not None:
        raise BlobError(
            f"file {name!r} contains a line sequence '#####', '{match.group(1)}:', '#####' that "
            "reads as a blob section marker; it cannot be packed unambiguously", run=run)
    if _FOOTER_LINE in content or content.endswith(_FOOTER_LINE.rstrip("\n")):
        raise BlobError(
            f"file {name!r} contains an 'End of Record' line that reads as the blob footer; "
            "it cannot be packed unambiguously", run=run)


def iter_pack(run_number: int, files: Mapping[str, str], packed_at: datetime) -> Iterator[bytes]:
    """Yield the blob's UTF-8 bytes piece by piece (header, each section, footer).

    Every check (names, clashes, content) runs before the first piece is yielded, so a consumer
    never receives part of a blob that is then refused.
    """
    run_number = _check_run(run_number)
    if not files:
        raise BlobError("no files to pack", run=run_number)
    ordered = order_files(files.keys(), run=run_number)
    for relpath in ordered:
        check_content(relpath, files[relpath], run=run_number)
    stamp = format_packed_on(packed_at)
    return _generate(run_number, files, ordered, stamp)


def _generate(run: int, files: Mapping[str, str], ordered: list[str], stamp: str) -> Iterator[bytes]:
    yield header_text(run, stamp).encode("utf-8")
    for relpath in ordered:
        yield section_marker(basename(relpath)).encode("utf-8")
        yield _encode(files[relpath], relpath, run)
    yield footer_text(run, stamp).encode("utf-8")


def _encode(content: str, relpath: str, run: int) -> bytes:
    try:
        return content.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BlobError(f"file {relpath!r} cannot be encoded as UTF-8: {exc.reason}",
                        run=run) from exc


def _check_run(run_number: int) -> int:
    if isinstance(run_number, bool) or not isinstance(run_number, int) or run_number < 0:
        raise BlobError(f"run number must be a non-negative integer, got {run_number!r}")
    return run_number


def pack(run_number: int, files: Mapping[str, str], packed_at: datetime) -> bytes:
    """The blob of one run as UTF-8 bytes (keys: relative paths; sections named by basename)."""
    return b"".join(iter_pack(run_number, files, packed_at))


@dataclass(frozen=True)
class PackedFile:
    """A blob written to disk by :func:`pack_to_file`."""

    path: Path
    size: int
    md5: str
    adler32: int


def pack_to_file(path: str | os.PathLike, run_number: int, files: Mapping[str, str],
                 packed_at: datetime, *, fsync: bool = True) -> PackedFile:
    """Stream the blob into ``path`` atomically (temporary file + rename: no reader sees part
    of it); the blob is never whole in memory. ``fsync=False`` for a scratch copy that is only
    read back."""
    target = Path(path)
    pieces = iter_pack(run_number, files, packed_at)  # validates before anything is written
    digest, adler, size = hashlib.md5(), 1, 0
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            for piece in pieces:
                out.write(piece)
                digest.update(piece)
                adler = zlib.adler32(piece, adler)
                size += len(piece)
            out.flush()
            if fsync:
                os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return PackedFile(target, size, digest.hexdigest(), adler & 0xFFFFFFFF)


# ---------------------------------------------------------------------------------------------
# Unpacking
# ---------------------------------------------------------------------------------------------

def unpack(data: bytes) -> tuple[int, dict[str, str]]:
    """Parse a blob strictly: returns (run number, basename → content).

    Header and footer must agree (run and ``Packed on``); the footer is taken from the end of
    the blob, so only section markers delimit files.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BlobError(f"blob is not valid UTF-8 (byte {exc.start})") from exc
    head = _HEADER_RE.match(text)
    if head is None:
        raise BlobError("blob does not start with 'Start of Record⏎Run Number: <n>⏎Packed on … UTC⏎'")
    run = int(head.group(1))
    footer = footer_text(run, head.group(2))
    if not text.endswith(footer):
        raise BlobError("blob does not end with the footer matching its header "
                        f"(expected {footer!r})", run=run)
    body = text[head.end():len(text) - len(footer)]
    return run, _split_body(body, run)


def _split_body(body: str, run: int) -> dict[str, str]:
    matches = list(MARKER_RE.finditer(body))
    if not matches:
        raise BlobError("blob holds no file sections", run=run)
    if matches[0].start() != 0:
        raise BlobError("unexpected text between the header and the first file section", run=run)
    files: dict[str, str] = {}
    for i, match in enumerate(matches):
        name = match.group(1)
        end = matches[i + 1].start() if i + 1 < len(matches) else len(body)
        if name in files:
            raise BlobError(f"blob holds two sections named {name!r}", run=run)
        files[name] = body[match.end():end]
    return files


def split_blob(text: str) -> dict[str, str]:
    """Legacy ``extract_files_from_blob``: name → content, later duplicates win; the last file
    ends at the first ``⏎End of Record⏎``."""
    matches = list(MARKER_RE.finditer(text))
    if not matches:
        raise BlobError("No file markers found in blob")
    files: dict[str, str] = {}
    for i, match in enumerate(matches):
        start = match.end()
        if i + 1 < len(matches):
            end = matches[i + 1].start()
        else:
            found = text.find(_FOOTER_LINE, start)
            end = found if found >= 0 else len(text)
        files[match.group(1)] = text[start:end]
    return files


# ---------------------------------------------------------------------------------------------
# Legacy --validate
# ---------------------------------------------------------------------------------------------

_VALIDATE_SPLIT_RE = re.compile(r"#####\n(.+?):\n#####\n([\s\S]*?)(?=(?:\n#####)|(?:\nEnd of Record))")


def validate_split(text: str) -> dict[str, str]:
    """The --validate splitter: content ends at the next ``⏎#####`` or ``⏎End of Record``."""
    return {m.group(1): m.group(2) for m in _VALIDATE_SPLIT_RE.finditer(text)}


def validate_metadata(files: Mapping[str, str]) -> list[str]:
    """The legacy --validate rule over split files; returns the errors (empty list = passed).

    In ``metadata.fcl`` each of ``components``, ``config_name`` and ``sbndaq_commit_or_version``
    must match ``<key>:\\s+(.+)`` exactly once (unanchored search); a missing file counts three.
    """
    if not files:
        return ["No files found in blob"]
    content = files.get(VALIDATE_FILE)
    if content is None:
        return [f"{param}: file '{VALIDATE_FILE}' not found" for param in VALIDATE_KEYS]
    errors = []
    for param, key in VALIDATE_KEYS.items():
        count = len(re.findall(f"{key}:\\s+(.+)", content))
        if count == 0:
            errors.append(f"{param}: no matches for parameter '{key}'")
        elif count > 1:
            errors.append(f"{param}: multiple matches for parameter '{key}'")
    return errors


def validated_values(files: Mapping[str, str]) -> dict[str, str]:
    """The values --validate reports (quotes removed) for the keys that matched exactly once."""
    content = files.get(VALIDATE_FILE, "")
    values = {}
    for param, key in VALIDATE_KEYS.items():
        found = re.findall(f"{key}:\\s+(.+)", content)
        if len(found) == 1:
            values[param] = found[0].replace('"', "").strip()
    return values


#: Longest metadata.fcl section the streamed --validate keeps (characters): the legacy rule needs
#: the whole section (a key's whitespace may span lines), every other section is never held.
MAX_METADATA_SECTION_CHARS = 1 << 20
_HASHES_LINE = "#####"
_FOOTER_TEXT_LINE = "End of Record"
_METADATA_NAME_LINE = f"{VALIDATE_FILE}:"


@dataclass(frozen=True)
class MetadataVerdict:
    """The legacy ``--validate`` verdict of one blob, from :class:`MetadataScan`.

    ``sections``: file sections the legacy splitter finds (0: it raises "No file markers found
    in blob"); ``errors``: :func:`validate_metadata`'s list; ``too_large``: the metadata.fcl
    section exceeded :data:`MAX_METADATA_SECTION_CHARS` and was not validated (``errors`` then
    says so).
    """

    sections: int
    errors: tuple
    too_large: bool = False

    def raise_if_unsplittable(self) -> None:
        """:func:`split_blob`'s error for a blob without any file marker."""
        if not self.sections:
            raise BlobError("No file markers found in blob")


def _compact(line: str) -> str:
    """A line as far as marker detection needs it: short lines as they are, a long one as a
    stand-in of the same last character that equals no special line."""
    return line if len(line) <= 16 else "~" * 16 + line[-1]


def _is_name_line(line: str) -> bool:
    return len(line) >= 2 and line.endswith(":")


class MetadataScan:
    """The legacy ``--validate`` (``validate_metadata(split_blob(text))`` over the blob decoded
    as UTF-8 with replacement) fed chunk by chunk as the blob is downloaded: it holds the
    metadata.fcl section (bounded) and a few short lines, never the blob.

    The legacy splitter's markers (``⏎#####⏎<name>:⏎#####⏎``, found left to right without
    overlap) are whole lines, so the scan works on lines: a marker starts at the newline that
    ends line *i* when lines *i+1* and *i+3* are ``#####`` and line *i+2* is ``<name>:``, and
    the next marker can start at the newline ending line *i+4* at the earliest. A section runs
    to the next marker, the last one to the first ``⏎End of Record⏎`` after its start (or the
    end); a later section of the same name wins.
    """

    def __init__(self, max_section_chars: int = MAX_METADATA_SECTION_CHARS):
        self.max_section_chars = max_section_chars
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._partial = ""  # the line in progress (compacted unless captured)
        self._lines = 0  # complete lines so far (global index of the line in progress)
        self._context: list = []  # the last (up to) 2 complete lines, compacted
        self._next_hashes = 0  # first complete line not yet examined as a marker's first #####
        self._next_start = 0  # lowest line whose ending newline may start a marker
        self.sections = 0
        self._content: Optional[str] = None  # the finalized metadata.fcl section
        self._content_too_large = False
        # The metadata.fcl section being read: its first line, its complete lines (while they
        # fit), whether they stopped fitting, and the line before the first footer after it.
        self._capture_from: Optional[int] = None
        self._captured: list = []
        self._captured_chars = 0
        self._overflow = False
        self._footer: Optional[int] = None
        self._done: Optional[MetadataVerdict] = None

    def update(self, chunk: bytes) -> None:
        """Scan the next bytes of the blob (any chunk size)."""
        self._feed(self._decoder.decode(chunk))

    def result(self) -> MetadataVerdict:
        """The verdict once the whole blob was fed."""
        if self._done is None:
            self._feed(self._decoder.decode(b"", final=True))
            if self._capture_from is not None:  # the last section: to the footer, or the end
                if self._footer is not None:
                    self._finish_section(self._footer)
                else:
                    self._keep(self._partial)
                    self._finish_section(None)
            self._done = self._verdict()
        return self._done

    # ---- internals ----

    def _feed(self, text: str) -> None:
        if not text:
            return
        parts = text.split("\n")
        if len(parts) == 1:
            self._partial += text
        else:
            parts[0] = self._partial + parts[0]
            self._partial = parts.pop()
            self._complete(parts)
        if self._capture_from is None:
            self._partial = _compact(self._partial)
        elif self._captured_chars + len(self._partial) > self.max_section_chars:
            self._overflow = True
            self._partial = _compact(self._partial)

    def _complete(self, new: list) -> None:
        """Lines ``new`` (global indexes from ``self._lines``) are complete."""
        first = self._lines - len(self._context)
        lines = self._context + new
        self._lines += len(new)
        position = self._next_hashes - first
        base = self._lines - len(new)  # global index of new[0]
        capture_pos = 0 if self._capture_from is None else self._capture_from - base
        while True:
            try:
                hashes = lines.index(_HASHES_LINE, max(position, 0))
            except ValueError:
                break
            if hashes + 2 >= len(lines):
                break  # the marker's last lines have not arrived yet
            position = hashes + 1
            start = first + hashes - 1  # the line whose newline would start the marker
            if (start < self._next_start or start < 0 or lines[hashes + 2] != _HASHES_LINE
                    or not _is_name_line(lines[hashes + 1])):
                continue
            # A marker: lines up to `start` belong to the section before it.
            if self._capture_from is not None:
                self._capture(new, capture_pos, start + 1 - base)
                self._finish_section(start)
            self.sections += 1
            self._next_start = start + 4
            position = hashes + 3
            if lines[hashes + 1] == _METADATA_NAME_LINE:
                self._start_capture(start + 4)
                capture_pos = start + 4 - base
        self._next_hashes = first + max(position, len(lines) - 2)
        if self._capture_from is not None:
            self._capture(new, capture_pos, len(new))
            self._find_footer(first, lines)
        self._context = [_compact(line) for line in lines[-2:]]

    def _start_capture(self, line: int) -> None:
        self._capture_from = line
        self._captured, self._captured_chars = [], 0
        self._overflow, self._footer = False, None

    def _capture(self, new: list, begin: int, end: int) -> None:
        """Keep ``new[begin:end]`` (complete lines of the section) while they fit."""
        begin = max(begin, 0)
        if end <= begin or self._overflow:
            return
        piece = new[begin:end]
        size = sum(map(len, piece)) + len(piece)
        if self._captured_chars + size > self.max_section_chars:
            self._overflow = True
            return
        self._captured += piece
        self._captured_chars += size

    def _keep(self, partial: str) -> None:
        """The unterminated last line of the blob belongs to the last section."""
        if not self._overflow:
            if self._captured_chars + len(partial) > self.max_section_chars:
                self._overflow = True
            else:
                self._captured.append(partial)

    def _find_footer(self, first: int, lines: list) -> None:
        """The first ``End of Record`` line after the section's first line (its newline and
        the one before it are the legacy splitter's end of the last section)."""
        if self._footer is not None:
            return
        position = max(self._capture_from + 1 - first, 0)
        try:
            at = lines.index(_FOOTER_TEXT_LINE, position)
        except ValueError:
            return
        self._footer = first + at - 1

    def _finish_section(self, last_line: Optional[int]) -> None:
        """The metadata.fcl section ends with line ``last_line`` (None: with the blob)."""
        count = None if last_line is None else last_line - self._capture_from + 1
        if self._overflow and (count is None or count > len(self._captured)):
            self._content, self._content_too_large = None, True
        else:
            kept = self._captured if count is None else self._captured[:count]
            self._content, self._content_too_large = "\n".join(kept), False
        self._capture_from = None
        self._captured, self._captured_chars = [], 0
        self._overflow, self._footer = False, None

    def _verdict(self) -> MetadataVerdict:
        if not self.sections:
            return MetadataVerdict(0, ("No file markers found in blob",))
        if self._content_too_large:
            return MetadataVerdict(self.sections, (
                f"{VALIDATE_FILE}: section larger than {self.max_section_chars} characters, "
                "not validated",), too_large=True)
        files = {VALIDATE_FILE: self._content} if self._content is not None else {"": ""}
        return MetadataVerdict(self.sections, tuple(validate_metadata(files)))


# ---------------------------------------------------------------------------------------------
# Taking over legacy blobs: equal but for the ``Packed on`` lines
# ---------------------------------------------------------------------------------------------

#: ``%b %d %H:%M`` in the C locale is always 12 characters (``Oct 05 09:07``), so a blob that
#: differs from ours only in its two ``Packed on`` times has exactly our size, and the times sit
#: at fixed offsets: in line 3 after ``Packed on `` and in the last line before `` UTC⏎``.
PACKED_ON_WIDTH = 12
_PACKED_ON_RE = re.compile(
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"(?:0[1-9]|[12][0-9]|3[01]) (?:[01][0-9]|2[0-3]):[0-5][0-9]")
_FOOTER_TAIL = b" UTC\n"


def packed_on_spans(run_number: int, size: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Byte ranges ``[start, end)`` of the header's and the footer's ``Packed on`` time in a blob
    of ``size`` bytes for this run (the header is ``Start of Record⏎Run Number: <run>⏎Packed on
    <TS> UTC⏎``, the footer ends ``Packed on <TS> UTC⏎``)."""
    head = len(f"Start of Record\nRun Number: {_check_run(run_number)}\nPacked on ".encode())
    foot = size - len(_FOOTER_TAIL) - PACKED_ON_WIDTH
    if foot < head + PACKED_ON_WIDTH + len(_FOOTER_TAIL):
        raise BlobError(f"{size} bytes is too short for a blob", run=run_number)
    return (head, head + PACKED_ON_WIDTH), (foot, foot + PACKED_ON_WIDTH)


def is_packed_on_time(text: str) -> bool:
    """True for exactly a ``%b %d %H:%M`` time in the C locale (``Oct 15 16:05``)."""
    return _PACKED_ON_RE.fullmatch(text) is not None


@dataclass(frozen=True)
class PackedOnComparison:
    """How a stored blob compares with the blob packed now (:class:`PackedOnComparator`).

    ``identical``: the same bytes. ``only_packed_on``: the same bytes except the two ``Packed on``
    times, which hold another valid time, the same in header and footer (a blob the legacy tool
    packed with the wall clock). Otherwise ``difference`` says where the blobs first differ.
    """

    identical: bool
    only_packed_on: bool
    packed_on: str
    stored_packed_on: Optional[str]
    stored_size: int
    difference: Optional[str]


class PackedOnComparator:
    """Compares a stored blob, fed chunk by chunk as it is downloaded, with our packed blob read
    in step from ``ours`` (a seekable binary file at the blob's start): neither is ever held
    whole.

    Only the time in the third line (``Packed on <TS> UTC``) and the same time in the last line
    may differ, and only into another valid ``%b %d %H:%M`` time; any other byte, a different
    size, a malformed time or a header time that disagrees with the footer's is a difference.
    """

    def __init__(self, run_number: int, ours: BinaryIO, size: int):
        self.run = run_number
        self.size = size
        self._ours = ours
        self._spans = packed_on_spans(run_number, size)
        self.packed_on = self._our_packed_on()
        self._stored = [bytearray(), bytearray()]
        self._position = 0
        self._lines = 1
        self._difference: Optional[str] = None

    def _our_packed_on(self) -> str:
        origin = self._ours.tell()
        times = []
        for low, _ in self._spans:
            self._ours.seek(origin + low)
            times.append(self._ours.read(PACKED_ON_WIDTH).decode("ascii", "replace"))
        self._ours.seek(origin)
        if not is_packed_on_time(times[0]) or times[0] != times[1]:
            raise BlobError("the blob to compare with has no valid 'Packed on' lines "
                            f"({times[0]!r}, {times[1]!r})", run=self.run)
        return times[0]

    def update(self, chunk: bytes) -> None:
        """Compare the next downloaded bytes (any chunk size)."""
        start, end = self._position, self._position + len(chunk)
        self._position = end
        if self._difference is not None:
            return  # the first difference is known: only the size still counts
        ours = self._ours.read(len(chunk)) if start < self.size else b""
        for index, (low, high) in enumerate(self._spans):
            lo, hi = max(low, start), min(high, end)
            if lo < hi:
                self._stored[index] += chunk[lo - start:hi - start]
        masked = self._masked(start, chunk[:len(ours)], ours)
        if masked != ours:
            at = next(i for i, (a, b) in enumerate(zip(masked, ours)) if a != b)
            line = self._lines + ours.count(b"\n", 0, at)
            self._difference = f"first difference at byte {start + at}, line {line}"
            return
        self._lines += ours.count(b"\n")
        if len(ours) < len(chunk):
            self._difference = f"UconDB's blob goes on after our {self.size} bytes"

    def _masked(self, start: int, chunk: bytes, ours: bytes) -> bytes:
        """``chunk`` with our bytes in place of its ``Packed on`` times."""
        if chunk == ours:
            return chunk
        masked = bytearray(chunk)
        for low, high in self._spans:
            lo, hi = max(low, start), min(high, start + len(chunk))
            if lo < hi:
                masked[lo - start:hi - start] = ours[lo - start:hi - start]
        return bytes(masked)

    def result(self) -> PackedOnComparison:
        """The verdict once the whole stored blob was fed."""
        difference = self._difference
        if difference is None and self._position < self.size:
            difference = f"UconDB's blob ends after {self._position} of our {self.size} bytes"
        header, footer = (bytes(w).decode("utf-8", "replace") for w in self._stored)
        if difference is None:
            if not is_packed_on_time(header):
                difference = f"line 3 is not 'Packed on <%b %d %H:%M> UTC' (time {header!r})"
            elif not is_packed_on_time(footer):
                difference = ("the last line is not 'Packed on <%b %d %H:%M> UTC' "
                              f"(time {footer!r})")
            elif header != footer:
                difference = (f"the header's 'Packed on {header} UTC' disagrees with the "
                              f"footer's 'Packed on {footer} UTC'")
        identical = difference is None and header == self.packed_on
        return PackedOnComparison(
            identical=identical, only_packed_on=difference is None and not identical,
            packed_on=self.packed_on, stored_packed_on=header if difference is None else None,
            stored_size=self._position, difference=difference)
