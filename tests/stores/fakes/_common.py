"""Shared helpers of the fake artdaq_database tools: argv parsing, call log, the store."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path


def parse(tool: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=tool)
    parser.add_argument("-p", "--path", required=True)
    parser.add_argument("-r", "--run", required=True, type=int)
    parser.add_argument("-c", "--configuration", required=True)
    parser.add_argument("-t", "--threads", type=int, default=1)
    parser.add_argument("-d", "--debug", default="false")
    return parser.parse_args()


def log_call(tool: str, **extra) -> None:
    """Append argv, relevant environment, cwd and extras to $FAKE_TOOLS_LOG (JSON lines)."""
    target = os.environ.get("FAKE_TOOLS_LOG")
    if not target:
        return
    env = {k: v for k, v in os.environ.items()
           if k.startswith("ARTDAQ_") or k in ("PATH", "LD_LIBRARY_PATH", "PYTHONPATH")}
    entry = {"tool": tool, "argv": sys.argv[1:], "env": env, "cwd": os.getcwd(), **extra}
    with open(target, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")


def listing(directory: str) -> list[str]:
    root = Path(directory)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def open_store():
    """The filesystemdb named by ARTDAQ_DATABASE_URI, clock from FAKE_ARTDAQ_NOW if set."""
    from archiver_resources.artdaqdb.filesystem import FilesystemArtdaqDB

    now = os.environ.get("FAKE_ARTDAQ_NOW")
    clock = (lambda: datetime.fromisoformat(now)) if now else None
    return FilesystemArtdaqDB(os.environ["ARTDAQ_DATABASE_URI"], clock=clock, fsync=False)


def simulated_failure(tool: str) -> None:
    """FAKE_<TOOL>_FAIL=<code> exits with that code; FAKE_<TOOL>_SLEEP=<s> sleeps first."""
    import time

    key = tool.upper()
    if os.environ.get(f"FAKE_{key}_SLEEP"):
        time.sleep(float(os.environ[f"FAKE_{key}_SLEEP"]))
    if os.environ.get(f"FAKE_{key}_FAIL"):
        print(f"{tool}: simulated failure for {os.environ['ARTDAQ_DATABASE_URI']}", file=sys.stderr)
        sys.exit(int(os.environ[f"FAKE_{key}_FAIL"]))
