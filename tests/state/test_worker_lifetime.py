"""A CLI run worker does not outlive the CLI: SIGINT at the parent's death (Linux) and a hard exit
after a grace period when it does not stop (a worker ignoring SIGINT here)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

WORKER = """
import os, signal, sys, threading, time
sys.path.insert(0, {repo!r})
from archiver_assets.cli.workers import _watch_parent, die_with_parent
signal.signal(signal.SIGINT, signal.SIG_IGN if {ignore} else signal.default_int_handler)
parent = os.getppid()
assert die_with_parent(str(parent))
threading.Thread(target=_watch_parent, args=(parent, 1.0), daemon=True).start()
print(os.getpid(), flush=True)
try:
    time.sleep(60)
except KeyboardInterrupt:
    sys.exit(130)
"""

# The CLI stand-in: starts the worker, prints its pid, and dies at once.
PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdout=subprocess.PIPE, text=True,
                         start_new_session=True)
print(child.stdout.readline().strip(), flush=True)
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("ignore_sigint", [False, True], ids=["stops-on-sigint", "hard-exit"])
def test_worker_ends_soon_after_its_parent_dies(ignore_sigint):
    code = WORKER.format(repo=str(REPO), ignore=ignore_sigint)
    out = subprocess.run([sys.executable, "-c", PARENT, code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    pid = int(out.split()[0])
    deadline = time.monotonic() + 15
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    still = alive(pid)
    if still:
        os.kill(pid, 9)
    assert not still, "the worker outlived its parent by 15 s"
