"""Typed errors of the archiver: each one renders as a single line an operator can act on.

Every error names what it is about (run, file, key, store) and why. Tracebacks belong in debug
logs; ``str(error)`` is the user-facing message and never contains a secret. It is one printable
line: control characters it carries from a run record (a file name, a line of a file) are escaped.
"""

from typing import Optional

from archiver_resources.printable import printable


class ArchiverError(Exception):
    """Base class of every error the archiver raises on purpose.

    ``retryable`` tells the pipeline whether trying again later may help (network, lock,
    transient store failure) or whether an operator must act first (bad input, integrity).
    """

    retryable: bool = False

    def __init__(self, message: str, *, retryable: Optional[bool] = None):
        super().__init__(printable(message))
        if retryable is not None:
            self.retryable = retryable


class ConfigError(ArchiverError):
    """The configuration file (``config.yaml``) is missing, malformed or inconsistent."""

    def __init__(self, reason: str, *, key: Optional[str] = None, path: Optional[str] = None):
        self.reason = reason
        self.key = key
        self.path = path
        where = []
        if path:
            where.append(f"config {path}")
        if key:
            where.append(f"key '{key}'")
        prefix = (", ".join(where) + ": ") if where else ""
        super().__init__(f"{prefix}{reason}")


class RunRecordError(ArchiverError):
    """A run-record directory or one of its files cannot be archived as it is."""

    def __init__(self, reason: str, *, run: Optional[int] = None, file: Optional[str] = None,
                 retryable: bool = False):
        self.run = run
        self.file = file
        self.reason = reason
        parts = []
        if run is not None:
            parts.append(f"run {run}")
        if file:
            parts.append(f"file {file}")
        prefix = (", ".join(parts) + ": ") if parts else ""
        super().__init__(f"{prefix}{reason}", retryable=retryable)


class FhiclSyntaxError(ArchiverError):
    """FHiCL text that does not parse. Carries file name, 1-based line and column, and the line."""

    def __init__(self, reason: str, *, name: str = "<fhicl>", line: int = 0, column: int = 0,
                 excerpt: str = ""):
        self.reason = reason
        self.name = name
        self.line = line
        self.column = column
        self.excerpt = excerpt
        message = f"{name}:{line}:{column}: FHiCL syntax error: {reason}"
        if excerpt:
            message += f" | {excerpt.strip()[:120]}"
        super().__init__(message)


class BlobError(ArchiverError):
    """A blob cannot be packed (e.g. two files share a basename) or unpacked (malformed text)."""

    def __init__(self, reason: str, *, run: Optional[int] = None):
        self.run = run
        self.reason = reason
        prefix = f"run {run}: " if run is not None else ""
        super().__init__(f"{prefix}{reason}")


class StoreError(ArchiverError):
    """A store (artdaqDB or UconDB) failed. Subclasses say which; ``retryable`` says if it may pass."""

    store = "store"

    def __init__(self, reason: str, *, run: Optional[int] = None, retryable: bool = False):
        self.run = run
        self.reason = reason
        prefix = f"{self.store}: " + (f"run {run}: " if run is not None else "")
        super().__init__(f"{prefix}{reason}", retryable=retryable)


class ArtdaqDBError(StoreError):
    """artdaqDB refused or failed an operation."""

    store = "artdaqDB"


class AlreadyArchivedError(ArtdaqDBError):
    """The configuration ``<run>/<config>`` already exists in artdaqDB (never overwritten)."""


class AlreadyUpdatedError(AlreadyArchivedError):
    """The configuration already has its RunHistory2 update (``<run>/<config>v<N>``)."""


class NotArchivedError(ArtdaqDBError):
    """The run has no configuration in artdaqDB (nothing to export or update)."""


class UconDBError(StoreError):
    """UconDB answered with an error or could not be reached."""

    store = "UconDB"

    def __init__(self, reason: str, *, run: Optional[int] = None, status: Optional[int] = None,
                 retryable: bool = False):
        self.status = status
        super().__init__(reason, run=run, retryable=retryable)


class DuplicateKeyError(UconDBError):
    """UconDB already holds a version with this key; the caller must verify it, never overwrite."""


class IntegrityError(ArchiverError):
    """What a store holds differs from what we archived (MD5 mismatch, hashes disagree)."""

    def __init__(self, reason: str, *, run: Optional[int] = None, expected: str = "",
                 actual: str = ""):
        self.run = run
        self.reason = reason
        self.expected = expected
        self.actual = actual
        prefix = f"run {run}: " if run is not None else ""
        detail = f" (expected {expected}, got {actual})" if expected or actual else ""
        super().__init__(f"{prefix}{reason}{detail}")
