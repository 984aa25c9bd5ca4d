"""artdaq_database's C++ FHiCL reader as a test oracle: ``oracle fcl2json - -`` exits 0 when the
C++ (fhicl-cpp in snippet mode, as artdaq_database imports) accepts the text, 3 with its
diagnostic on stderr when it refuses it. Tests using it skip, saying why, when it is absent.

``ARCHIVER_ADB_ORACLE`` names the binary (default: the build on the development machine)."""

import os
import subprocess
from pathlib import Path
from typing import Optional

import pytest

from archiver_resources.fhicl import parse_fhicl

DEFAULT_ORACLE = "/work/scratch/adb-oracle/bin/oracle"


def oracle_path() -> Optional[Path]:
    path = Path(os.environ.get("ARCHIVER_ADB_ORACLE", DEFAULT_ORACLE))
    return path if path.is_file() and os.access(path, os.X_OK) else None


def require_oracle() -> Path:
    path = oracle_path()
    if path is None:
        pytest.skip("artdaq_database's C++ converter (adb oracle) is not built on this machine: "
                    "set ARCHIVER_ADB_ORACLE to its `oracle` binary to run this comparison")
    return path


def ascii_only(text: str) -> str:
    """The C++ refuses every non-ASCII character (the project keeps them in strings and
    comments): compare the rest of the text by replacing each one with ``x``."""
    return text if text.isascii() else "".join(c if ord(c) < 128 else "x" for c in text)


def cpp_refusal(text: str) -> Optional[str]:
    """``None`` when the C++ reader accepts ``text`` (made ASCII), else its diagnostic.

    artdaq_database asserts a non-empty document, so the empty text is not sent (a converter's
    empty output, e.g. for an empty settings.txt, is the legacy rule and not a FHiCL question)."""
    if not text:
        return None
    result = subprocess.run([str(require_oracle()), "fcl2json", "-", "-"],
                            input=ascii_only(text).encode("ascii"), capture_output=True,
                            timeout=30, check=False)
    if result.returncode == 0:
        return None
    diagnostic = result.stderr.decode("utf-8", "replace")
    lines = [line for line in diagnostic.splitlines() if "Parse error" not in line][:6]
    return f"exit {result.returncode}: " + " | ".join(lines)


def assert_valid_fhicl(text: str, name: str, *, with_oracle: bool = True) -> None:
    """``text`` is valid FHiCL: the project's reader accepts it (``FhiclSyntaxError`` naming
    ``name`` otherwise) and, when the C++ reader is built and ``with_oracle``, so does the C++."""
    parse_fhicl(text, name)
    if with_oracle and oracle_path() is not None:
        refusal = cpp_refusal(text)
        assert refusal is None, f"{name}: refused by artdaq_database's C++ reader: {refusal}"
