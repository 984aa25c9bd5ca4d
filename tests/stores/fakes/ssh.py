"""Fake ssh: records its argv and runs the remote script locally with bash (stdin passed on)."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import log_call  # noqa: E402

argv = sys.argv[1:]
options = []
while argv and argv[0] == "-o":
    options.append(argv[1])
    argv = argv[2:]
host, script = argv[0], " ".join(argv[1:])
log_call("ssh", host=host, options=options, script=script)
os.execvp("bash", ["bash", "-c", script])
